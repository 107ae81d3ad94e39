"""Renaming an enum value breaks the release still running during the deploy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from bot.analysis.model import ActionKind, Family, Finding, RuleInfo, Severity, Statement
from bot.analysis.rule import Rule, Stage
from bot.analysis.rules.base import actions_of, finding
from bot.analysis.state import StreamState

if TYPE_CHECKING:
    from bot.analysis.options import AnalysisOptions

RENAME_ENUM_VALUE = RuleInfo(
    id="rename-enum-value",
    family=Family.COMPATIBILITY,
    default_severity=Severity.WARNING,
    summary="ALTER TYPE ... RENAME VALUE of an existing enum",
    explanation=(
        "During a deploy the old release keeps running against the migrated database: it "
        "still writes and compares the old label, and every such query fails with `invalid "
        "input value for enum` from the moment the rename commits until every instance runs "
        "the new code. Rename in steps: ADD VALUE the new label, deploy code that accepts "
        "both and writes the new one, UPDATE the rows in batches, and stop using the old "
        "label (an enum value cannot be dropped; a new type can replace the old one later)."
    ),
)


def check_rename_enum_value(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in actions_of(stmt, ActionKind.RENAME_ENUM_VALUE):
        if state.is_new_object("type", action.name):
            continue
        old, new = action.value or "<old>", action.detail or "<new>"
        yield finding(
            RENAME_ENUM_VALUE,
            stmt,
            f"RENAME VALUE '{old}' TO '{new}' of {action.name}: the running release still "
            f"uses '{old}'",
            advice=(
                f"ALTER TYPE {action.name} ADD VALUE IF NOT EXISTS '{new}';\n"
                f"-- deploy code that reads both and writes '{new}', then, in batches:\n"
                f"UPDATE <table> SET <column> = '{new}' WHERE <column> = '{old}';"
            ),
        )


RULES: tuple[Rule, ...] = (
    Rule(
        RENAME_ENUM_VALUE,
        Stage.SQL,
        "add the new value, migrate the rows, stop writing the old value, then drop it",
        judges=(ActionKind.RENAME_ENUM_VALUE,),
        check=check_rename_enum_value,
    ),
)
