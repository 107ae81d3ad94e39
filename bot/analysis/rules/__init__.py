"""The statement rules: each a RuleInfo and a check, listed here in report order.

`RULE_KINDS` says which action kinds each check looks at, so the engine calls a
check only for statements that contain one of them.
"""

from __future__ import annotations

from bot.analysis.model import ActionKind, RuleInfo
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
    names,
    renames,
    rls,
    timeouts,
    transactions,
    types,
    unknown,
)
from bot.analysis.rules.base import Check

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
    unknown,
)

STATEMENT_RULES: list[tuple[RuleInfo, Check]] = [
    rule for family in _FAMILIES for rule in family.RULES
]
RULE_KINDS: dict[str, tuple[ActionKind, ...]] = {
    rule_id: kinds for family in _FAMILIES for rule_id, kinds in family.KINDS.items()
}
RULE_INFOS: dict[str, RuleInfo] = {
    info.id: info
    for info in [*(info for info, _ in STATEMENT_RULES), downgrade.DESTRUCTIVE_DOWNGRADE]
}

__all__ = ["RULE_INFOS", "RULE_KINDS", "STATEMENT_RULES", "Check"]
