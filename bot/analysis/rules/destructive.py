"""The checklist's destructive changes: they lose data and need approval.

Only objects that existed before the change count: dropping a table, column or
index created earlier in the same set of new revisions loses nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from bot.analysis.model import Action, ActionKind, Family, Finding, RuleInfo, Severity, Statement
from bot.analysis.rule import PointsAt, Rule, Stage
from bot.analysis.rules.base import (
    AnalysisOptions,
    actions_of,
    bare_name,
    finding,
    tables_of,
)
from bot.analysis.state import StreamState

_APPROVAL = (
    "The checklist requires documenting it in a comment in the migration, a recent backup "
    "(mandatory in production) and approval before merging."
)

DROP_TABLE = RuleInfo(
    id="drop-table",
    family=Family.DESTRUCTIVE,
    default_severity=Severity.ERROR,
    summary="DROP TABLE of a table that existed before this change",
    explanation=(
        "Dropping a table destroys all of its rows, and a rollback cannot bring them back; "
        "code still deployed that queries the table fails at once. " + _APPROVAL + " Safer: "
        "first deploy code that no longer uses the table, then drop it in a later release; "
        "to keep a way back, rename it (e.g. to `<table>_deprecated`) and drop it only once "
        "nothing has missed it."
    ),
)

DROP_COLUMN = RuleInfo(
    id="drop-column",
    family=Family.DESTRUCTIVE,
    default_severity=Severity.ERROR,
    summary="DROP COLUMN of a column that existed before this change",
    explanation=(
        "Dropping a column destroys its data, and SQLAlchemy models still deployed that "
        "select the column fail until the new code is out. " + _APPROVAL + " Safer: remove "
        "the column from the models (or defer it) and deploy that first, then drop the column "
        "in a later migration."
    ),
)

DROP_INDEX = RuleInfo(
    id="drop-index",
    family=Family.DESTRUCTIVE,
    default_severity=Severity.ERROR,
    summary="DROP INDEX of an index that existed before this change",
    explanation=(
        "Queries that use the index fall back to slower plans, and a UNIQUE index stops "
        "enforcing uniqueness. Check `pg_stat_user_indexes.idx_scan` first to see whether the "
        "index is used. " + _APPROVAL + " Drop it with `DROP INDEX CONCURRENTLY` so that "
        "writes to the table are not blocked. A drop directly followed by a CREATE INDEX of "
        "the same name (a rebuild, e.g. retrying a failed CREATE INDEX CONCURRENTLY) is not "
        "reported."
    ),
)

ALTER_COLUMN_TYPE = RuleInfo(
    id="alter-column-type",
    family=Family.DESTRUCTIVE,
    default_severity=Severity.ERROR,
    summary="ALTER COLUMN ... TYPE on a table that existed before this change",
    explanation=(
        "Most type changes rewrite the whole table and its indexes under an ACCESS EXCLUSIVE "
        "lock (no reads or writes meanwhile), and a narrowing conversion can fail or lose "
        "data (truncated text, rounded numbers). A few changes are metadata-only (varchar(n) to "
        "a larger n or to text, dropping a numeric precision limit). " + _APPROVAL + " Safe "
        "alternative: add a new column of the new type, backfill it in batches, switch the "
        "application to it, then drop the old column in a later release."
    ),
)

TRUNCATE_TABLE = RuleInfo(
    id="truncate-table",
    family=Family.DESTRUCTIVE,
    default_severity=Severity.ERROR,
    summary="TRUNCATE of a table that existed before this change",
    explanation=(
        "TRUNCATE deletes every row under an ACCESS EXCLUSIVE lock and cannot be rolled back "
        "once committed; with CASCADE it also empties every table that references it. "
        + _APPROVAL
        + " If only some rows must go, delete them in batches with a WHERE clause, "
        "outside the DDL transaction."
    ),
)

# The checklist's destructive changes: the one list (policy, approvals and the
# destructive-undocumented rule all read it).
DESTRUCTIVE_RULE_IDS: tuple[str, ...] = tuple(
    info.id for info in (DROP_TABLE, DROP_COLUMN, DROP_INDEX, ALTER_COLUMN_TYPE, TRUNCATE_TABLE)
)


def check_drop_table(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in actions_of(stmt, ActionKind.DROP_TABLE):
        for table in tables_of(action):
            if state.is_existing_table(table):
                cascade = (
                    " CASCADE (also dropping dependent views and foreign keys)"
                    if action.cascade
                    else ""
                )
                yield finding(
                    DROP_TABLE,
                    stmt,
                    f"DROP TABLE {table}{cascade} destroys the table and all of its rows",
                    advice=(
                        f"Deploy code that no longer reads or writes {table} first, take a "
                        f"backup, then drop it in a later release. To keep a way back:\n"
                        f"ALTER TABLE {table} RENAME TO {bare_name(table)}_deprecated;\n"
                        f"-- and DROP TABLE {bare_name(table)}_deprecated once nothing missed it"
                    ),
                )


def check_drop_column(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in actions_of(stmt, ActionKind.DROP_COLUMN):
        table, column = action.table, action.column
        if state.is_existing_table(table) and not state.is_new_column(table, column):
            yield finding(
                DROP_COLUMN,
                stmt,
                f"DROP COLUMN {table}.{column} destroys the column's data",
                advice=(
                    f"1. Remove `{column}` from the {table} model (or mark it deferred) and "
                    f"deploy that release.\n"
                    f"2. In a later migration, with a backup taken:\n"
                    f"   ALTER TABLE {table} DROP COLUMN {column};"
                ),
            )


def check_drop_index(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in actions_of(stmt, ActionKind.DROP_INDEX):
        if (
            action.name
            and not state.is_new_index(action.name)
            and not state.is_rebuilt_index(action.name)
        ):
            yield finding(
                DROP_INDEX,
                stmt,
                f"DROP INDEX {action.name} removes an index that existed before this change",
                advice=(
                    f"Check that it is unused: SELECT idx_scan FROM pg_stat_user_indexes "
                    f"WHERE indexrelname = '{bare_name(action.name)}';\n"
                    f"Then drop it without blocking writes:\n"
                    f"DROP INDEX CONCURRENTLY IF EXISTS {action.name};"
                ),
            )


def check_alter_column_type(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in actions_of(stmt, ActionKind.ALTER_COLUMN_TYPE):
        table, column = action.table, action.column
        if not state.is_existing_table(table) or state.is_new_column(table, column):
            continue
        new_type = action.data_type or "<new type>"
        widening = None if action.using else _binary_compatible_sources(new_type)
        if widening is not None:
            yield finding(
                ALTER_COLUMN_TYPE,
                stmt,
                f"ALTER COLUMN {table}.{column} TYPE {new_type}: if {column} is {widening} "
                f"this is binary-compatible (no table rewrite, only a brief ACCESS EXCLUSIVE "
                f"lock); from any other type PostgreSQL rewrites {table} and may lose data",
                advice=(
                    f"Check the current type first:\n"
                    f"SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                    f"WHERE attrelid = '{table}'::regclass AND attname = '{column}';\n"
                    f"If it is {widening}, the change is metadata-only; otherwise add a new "
                    f"column, backfill it, then swap:\n{_swap_steps(action, new_type)}"
                ),
            )
            continue
        yield finding(
            ALTER_COLUMN_TYPE,
            stmt,
            f"ALTER COLUMN {table}.{column} TYPE {new_type}: most type changes rewrite the "
            f"table under ACCESS EXCLUSIVE and may lose data",
            advice=f"Add a new column, backfill it, then swap:\n{_swap_steps(action, new_type)}",
        )


def _swap_steps(action: Action, new_type: str) -> str:
    table, column = action.table, action.column
    cast = action.using or f"{column}::{new_type}"
    return (
        f"ALTER TABLE {table} ADD COLUMN {column}_new {new_type} NULL;\n"
        f"-- in batches, outside the DDL transaction; keep it in sync from the "
        f"application (or a trigger) meanwhile:\n"
        f"UPDATE {table} SET {column}_new = {cast} WHERE {column}_new IS NULL;\n"
        f"-- once the application uses {column}_new, in a later migration:\n"
        f"ALTER TABLE {table} DROP COLUMN {column};\n"
        f"ALTER TABLE {table} RENAME COLUMN {column}_new TO {column};"
    )


_TYPE_WITH_SIZE = re.compile(r"(?P<base>[A-Z ]+?)\s*(?:\((?P<args>[\d\s,]+)\))?", re.IGNORECASE)


def _binary_compatible_sources(new_type: str) -> str | None:
    """The current types from which a change to `new_type` needs no rewrite (PostgreSQL
    only updates the catalog: varchar -> text, a longer varchar, a wider numeric), or None
    when no current type would make it one."""
    match = _TYPE_WITH_SIZE.fullmatch(new_type.strip())
    if match is None:
        return None
    base = match.group("base").strip().upper()
    args = [a.strip() for a in (match.group("args") or "").split(",") if a.strip()]
    if base == "TEXT":
        return "varchar or text"
    if base in ("VARCHAR", "CHARACTER VARYING"):
        return f"varchar(n) with n ≤ {args[0]}" if args else "varchar(n) or text"
    if base in ("DECIMAL", "NUMERIC"):
        if not args:
            return "numeric(p, s)"
        scale = args[1] if len(args) > 1 else "0"
        return f"numeric(p, {scale}) with p ≤ {args[0]}"
    return None


def check_truncate(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in actions_of(stmt, ActionKind.TRUNCATE):
        existing = [t for t in tables_of(action) if state.is_existing_table(t)]
        if existing:
            names = ", ".join(existing)
            cascade = (
                " CASCADE (also emptying every table that references it)" if action.cascade else ""
            )
            yield finding(
                TRUNCATE_TABLE,
                stmt,
                f"TRUNCATE {names}{cascade} deletes every row",
                advice=(
                    f"Take a backup first. If only some rows must go, delete them in batches "
                    f"outside the DDL transaction, e.g.:\n"
                    f"DELETE FROM {existing[0]} WHERE ctid IN "
                    f"(SELECT ctid FROM {existing[0]} WHERE <condition> LIMIT 10000);"
                ),
            )


RULES: tuple[Rule, ...] = (
    Rule(
        DROP_TABLE,
        Stage.SQL,
        "ship code that no longer uses the table, then drop it in a later release",
        judges=(ActionKind.DROP_TABLE,),
        check=check_drop_table,
        needs_approval=True,
        needs_adr=True,
        needs_window=True,
    ),
    Rule(
        DROP_COLUMN,
        Stage.SQL,
        "remove the column from the models and deploy that first; drop it in a later migration",
        judges=(ActionKind.DROP_COLUMN,),
        check=check_drop_column,
        points_at=PointsAt.DROP_COLUMN,
        needs_approval=True,
    ),
    Rule(
        DROP_INDEX,
        Stage.SQL,
        "check pg_stat_user_indexes.idx_scan, then DROP INDEX CONCURRENTLY",
        judges=(ActionKind.DROP_INDEX,),
        check=check_drop_index,
        points_at=PointsAt.DROP_INDEX,
        needs_approval=True,
    ),
    Rule(
        ALTER_COLUMN_TYPE,
        Stage.SQL,
        "add a column of the new type, backfill it, switch to it, drop the old one later",
        judges=(ActionKind.ALTER_COLUMN_TYPE,),
        check=check_alter_column_type,
        points_at=PointsAt.ALTER_TYPE,
        needs_approval=True,
        needs_window=True,
    ),
    Rule(
        TRUNCATE_TABLE,
        Stage.SQL,
        "delete only the rows that must go, in batches, outside the DDL transaction",
        judges=(ActionKind.TRUNCATE,),
        check=check_truncate,
        needs_approval=True,
        needs_adr=True,
        needs_window=True,
    ),
)
