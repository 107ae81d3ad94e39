"""Renames break the application code still running during the deploy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from bot.analysis.model import ActionKind, Family, Finding, RuleInfo, Severity, Statement
from bot.analysis.rules.base import Check, actions_of, finding
from bot.analysis.state import StreamState

if TYPE_CHECKING:
    from bot.analysis.options import AnalysisOptions

RENAME_COLUMN = RuleInfo(
    id="rename-column",
    family=Family.COMPATIBILITY,
    default_severity=Severity.WARNING,
    summary="RENAME COLUMN on an existing table",
    explanation=(
        "During a deploy the old release keeps running against the migrated database: its "
        "queries still use the old column name and fail from the moment the rename commits "
        "until every instance runs the new code. Rename in steps instead: add the new column, "
        "write to both (or keep them in sync with a trigger), backfill, switch reads to the new "
        "column, and drop the old one in a later release."
    ),
)

RENAME_TABLE = RuleInfo(
    id="rename-table",
    family=Family.COMPATIBILITY,
    default_severity=Severity.WARNING,
    summary="RENAME of an existing table",
    explanation=(
        "The release still running during the deploy queries the table by its old name and "
        "fails from the moment the rename commits. Rename in steps: rename the table and "
        "create a view with the old name (a simple view is updatable), deploy code that uses "
        "the new name, then drop the view in a later release."
    ),
)


def check_rename_column(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in actions_of(stmt, ActionKind.RENAME_COLUMN):
        table, old, new = action.table, action.column, action.name
        if not state.is_existing_table(table) or state.is_new_column(table, old):
            continue
        yield finding(
            RENAME_COLUMN,
            stmt,
            f"RENAME COLUMN {table}.{old} to {new}: the running release still uses {old}",
            advice=(
                f"Expand and contract over several releases:\n"
                f"-- add {new} with {old}'s type, read from the catalog:\n"
                f"DO $$ BEGIN EXECUTE format('ALTER TABLE {table} ADD COLUMN {new} %s NULL', "
                f"(SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                f"WHERE attrelid = '{table}'::regclass AND attname = '{old}')); END $$;\n"
                f"-- write both columns from the application (or sync them with a trigger),\n"
                f"-- backfill in batches outside the DDL transaction:\n"
                f"UPDATE {table} SET {new} = {old} WHERE {new} IS NULL;\n"
                f"-- switch reads to {new}; in a later release:\n"
                f"ALTER TABLE {table} DROP COLUMN {old};"
            ),
        )


def check_rename_table(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in actions_of(stmt, ActionKind.RENAME_TABLE):
        table, new = action.table, action.name
        if not state.is_existing_table(table):
            continue
        yield finding(
            RENAME_TABLE,
            stmt,
            f"RENAME TABLE {table} to {new}: the running release still queries {table}",
            advice=(
                f"Keep the old name working until every instance runs the new code:\n"
                f"ALTER TABLE {table} RENAME TO {new};\n"
                f"CREATE VIEW {table} AS SELECT * FROM {new};\n"
                f"-- in a later release:\n"
                f"DROP VIEW {table};"
            ),
        )


RULES: list[tuple[RuleInfo, Check]] = [
    (RENAME_COLUMN, check_rename_column),
    (RENAME_TABLE, check_rename_table),
]
KINDS: dict[str, tuple[ActionKind, ...]] = {
    RENAME_COLUMN.id: (ActionKind.RENAME_COLUMN,),
    RENAME_TABLE.id: (ActionKind.RENAME_TABLE,),
}
