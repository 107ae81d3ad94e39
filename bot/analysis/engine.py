"""Runs the registry's rules stage by stage; names no concrete rule.

SQL: each statement of the upgrade stream, classified already
(`bot.analysis.parse.parse_statements`), goes to the checks that judge its action kinds.
DOWNGRADE: the downgrade stream against the upgrade's. STATIC and META: the new revision
files, the history and the dry-run. Findings carry each rule's default severity; the
caller applies the environment matrix. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import lru_cache

from bot.analysis.model import ActionKind, Finding, Statement
from bot.analysis.recreated import recreated_objects
from bot.analysis.registry import by_stage
from bot.analysis.rule import ProjectFacts, Rule, Stage
from bot.analysis.rules.base import AnalysisOptions, Check
from bot.analysis.rules.timeouts import with_revision_counts
from bot.analysis.state import StreamState, name_key, rebuilt_indexes

Dispatch = dict[ActionKind, tuple[Check, ...]]
AnyCheck = Callable[..., Iterable[Finding]]  # each stage's own signature (bot.analysis.rule)

__all__ = ["AnalysisOptions", "analyze_downgrade", "analyze_project", "analyze_upgrade"]


def analyze_upgrade(
    statements: Iterable[Statement], options: AnalysisOptions | None = None
) -> list[Finding]:
    """Findings of the SQL stage over the upgrade stream, in statement order.

    The timeout rules report once per revision (at its first offending statement)."""
    options = options or AnalysisOptions()
    dispatch = _dispatch(options.enabled)
    state = StreamState()
    findings: list[Finding] = []
    stream = [s for s in statements if s.actions and not _is_bookkeeping(s, options.version_table)]
    rebuilds = rebuilt_indexes(stream)
    recreated = recreated_objects(stream)
    for position, stmt in enumerate(stream):
        actions = stmt.actions
        state.enter(stmt)
        state.rebuilding = rebuilds.get(position, {})
        state.recreating = recreated.get(position, frozenset())
        checks = (
            dispatch.get(actions[0].kind, ())
            if len(actions) == 1
            else _checks_for_all(stmt, dispatch)
        )
        for check in checks:
            findings.extend(check(stmt, state, options))
        state.apply(stmt)
    return with_revision_counts(findings, state.per_revision)


def analyze_downgrade(
    upgrade: Iterable[Statement],
    downgrade: Iterable[Statement],
    options: AnalysisOptions | None = None,
) -> list[Finding]:
    """Findings of the DOWNGRADE stage: the downgrade stream judged against the upgrade's
    (Alembic's bookkeeping left out of both)."""
    options = options or AnalysisOptions()
    version_table = options.version_table
    ups = [s for s in upgrade if not _is_bookkeeping(s, version_table)]
    downs = [s for s in downgrade if not _is_bookkeeping(s, version_table)]
    findings: list[Finding] = []
    for _, check in _runnable(Stage.DOWNGRADE, options.enabled):
        findings.extend(check(ups, downs))
    return findings


def analyze_project(stage: Stage, facts: ProjectFacts) -> list[Finding]:
    """Findings of a STATIC or META stage, in rule order; each check sees what the earlier
    stages and checks found (`facts.findings`)."""
    if stage not in (Stage.STATIC, Stage.META):
        raise ValueError(f"{stage} is not a stage of project checks")
    found: list[Finding] = []
    for _, check in _runnable(stage, None):
        found.extend(check(replace(facts, findings=(*facts.findings, *found))))
    return found


def _runnable(stage: Stage, enabled: frozenset[str] | None) -> list[tuple[Rule, AnyCheck]]:
    """The stage's rules with a check the engine runs (not raised elsewhere) and their
    checks, of those enabled (None: all), in registry order."""
    return [
        (rule, rule.check)
        for rule in by_stage(stage)
        if rule.check is not None and (enabled is None or rule.id in enabled)
    ]


@lru_cache(maxsize=32)
def _dispatch(enabled: frozenset[str] | None) -> Dispatch:
    """Action kind -> the checks that judge it, in registry order."""
    by_kind: dict[ActionKind, list[Check]] = {}
    for rule, check in _runnable(Stage.SQL, enabled):
        for kind in rule.judges:
            by_kind.setdefault(kind, []).append(check)
    return {kind: tuple(checks) for kind, checks in by_kind.items()}


def _checks_for_all(stmt: Statement, dispatch: Dispatch) -> tuple[Check, ...]:
    """The checks for a multi-clause statement, each once, in rule order."""
    seen: list[Check] = []
    for action in stmt.actions:
        for check in dispatch.get(action.kind, ()):
            if check not in seen:
                seen.append(check)
    order = _rule_order()
    return tuple(sorted(seen, key=order.__getitem__))


@lru_cache(maxsize=1)
def _rule_order() -> dict[Check, int]:
    checks = _runnable(Stage.SQL, None)
    return {check: position for position, (_, check) in enumerate(checks)}


def _is_bookkeeping(stmt: Statement, version_table: str) -> bool:
    """Alembic's own CREATE TABLE / INSERT / UPDATE / DELETE on its version table."""
    table = stmt.actions[0].table if stmt.actions else None
    if table is None or version_table not in table:  # the cheap test first
        return False
    return name_key(table).rsplit(".", 1)[-1] == version_table
