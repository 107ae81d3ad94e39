"""The one rule registry: every rule migsafe can report, gathered from its family file.

A rule is one `Rule(...)` declaration (`bot.analysis.rule`) in its family's `RULES`, next
to its check. Adding a family means adding it to `_FAMILIES`; everything else (the engine,
the catalog, where batch findings point, which rules need approval, an ADR or a window)
reads this module. The order here is the report order: the SQL rules first, in the order
the engine runs them.
"""

from __future__ import annotations

from bot.analysis import suppress
from bot.analysis.model import RuleInfo
from bot.analysis.rule import PointsAt, ProjectFacts, Rule, Stage
from bot.analysis.rules import (
    backfill,
    columns,
    constraints,
    datatypes,
    destructive,
    downgrade,
    drops,
    enums,
    indexes,
    locking,
    meta,
    names,
    renames,
    revisions,
    rls,
    sandbox,
    timeouts,
    transactions,
    types,
    unknown,
    versions,
)

_FAMILIES = (
    destructive,
    drops,
    timeouts,
    columns,
    indexes,
    constraints,
    renames,
    enums,
    backfill,
    rls,
    datatypes,
    types,
    names,
    transactions,
    locking,
    versions,
    unknown,
    downgrade,
    revisions,
    suppress,
    sandbox,
    meta,
)


def _gathered() -> dict[str, Rule]:
    rules: dict[str, Rule] = {}
    for family in _FAMILIES:
        for rule in family.RULES:
            if rule.id in rules:  # ids are public: a clash is a bug, caught at import
                raise ValueError(f"rule id {rule.id!r} declared twice")
            rules[rule.id] = rule
    return rules


RULES: dict[str, Rule] = _gathered()

# Every rule's public description, by id: what reports, policies and suppressions check
# ids against.
INFOS: dict[str, RuleInfo] = {rule_id: rule.info for rule_id, rule in RULES.items()}


def by_stage(stage: Stage) -> tuple[Rule, ...]:
    """The rules of one stage, in registry order."""
    return tuple(rule for rule in RULES.values() if rule.stage is stage)


def points_at(rule_id: str) -> PointsAt:
    """Where findings of `rule_id` point; STATEMENT for an id the registry lacks."""
    rule = RULES.get(rule_id)
    return rule.points_at if rule is not None else PointsAt.STATEMENT


def approval_rule_ids() -> tuple[str, ...]:
    """The checklist's rules whose findings need approval where the environment asks."""
    return tuple(rule_id for rule_id, rule in RULES.items() if rule.needs_approval)


def adr_rule_ids() -> tuple[str, ...]:
    """The checklist's "significant" rules: the pull request must add or link an ADR."""
    return tuple(rule_id for rule_id, rule in RULES.items() if rule.needs_adr)


def window_rule_ids() -> tuple[str, ...]:
    """The checklist's major changes: they need the maintenance-window label. Those that
    also need an ADR first, as the policy's published default lists them."""
    major = [rule for rule in RULES.values() if rule.needs_window]
    return tuple(rule.id for rule in sorted(major, key=lambda rule: not rule.needs_adr))


__all__ = ["INFOS", "RULES", "PointsAt", "ProjectFacts", "Rule", "Stage", "by_stage"]
