"""Adding columns and NOT NULL to existing tables: rewrites and full scans under lock."""

from __future__ import annotations

import re
from collections.abc import Iterator

from bot.analysis.model import (
    Action,
    ActionKind,
    Family,
    Finding,
    RuleInfo,
    Severity,
    Statement,
)
from bot.analysis.rule import PointsAt, Rule, Stage
from bot.analysis.rules.base import AnalysisOptions, actions_of, bare_name, finding
from bot.analysis.state import StreamState

ADD_NOT_NULL_COLUMN = RuleInfo(
    id="add-not-null-column",
    family=Family.LOCKING,
    default_severity=Severity.ERROR,
    summary="ADD COLUMN ... NOT NULL without a constant default on an existing table",
    explanation=(
        "Adding a NOT NULL column without a default fails on a table that has rows, and "
        "filling it in the same statement (a volatile default) rewrites the table under an "
        "ACCESS EXCLUSIVE lock. Since PostgreSQL 11 a NOT NULL column with a constant default "
        "is instant. Otherwise use the checklist's add-then-backfill-then-swap pattern: add the "
        "column nullable, backfill it in batches, then SET NOT NULL (after a validated "
        "CHECK (col IS NOT NULL) NOT VALID constraint, so no long scan runs under the lock) and "
        "SET DEFAULT for new rows."
    ),
)

SET_NOT_NULL = RuleInfo(
    id="set-not-null",
    family=Family.LOCKING,
    default_severity=Severity.WARNING,
    summary="ALTER COLUMN ... SET NOT NULL on an existing table (full scan under ACCESS EXCLUSIVE)",
    explanation=(
        "SET NOT NULL scans the whole table to check that no row is NULL, holding an ACCESS "
        "EXCLUSIVE lock (no reads or writes) throughout. On PostgreSQL 12 and later the scan "
        "is skipped when a validated `CHECK (col IS NOT NULL)` constraint exists: add it "
        "NOT VALID (instant), VALIDATE it (scans under a lock that lets reads and writes go "
        "on), then SET NOT NULL and drop the CHECK."
    ),
)

VOLATILE_DEFAULT = RuleInfo(
    id="volatile-default",
    family=Family.LOCKING,
    default_severity=Severity.ERROR,
    summary="ADD COLUMN with a volatile default or GENERATED ... STORED (table rewrite)",
    explanation=(
        "A column whose default is volatile (random(), gen_random_uuid(), clock_timestamp(), "
        "nextval() as in serial columns) or that is GENERATED ... STORED must be computed for "
        "every existing row: PostgreSQL rewrites the whole table and its indexes under an "
        "ACCESS EXCLUSIVE lock. Add the column without a default, SET DEFAULT for new rows, "
        "and backfill existing rows in batches outside the DDL transaction."
    ),
)

# serial types -> the integer type they stand for (their default is a volatile nextval())
_SERIAL_TYPES = {
    "serial": "integer",
    "serial4": "integer",
    "bigserial": "bigint",
    "serial8": "bigint",
    "smallserial": "smallint",
    "serial2": "smallint",
}


def _is_serial(action: Action) -> bool:
    return (action.data_type or "").lower() in _SERIAL_TYPES


def _rewrites(action: Action, options: AnalysisOptions) -> bool:
    return (
        action.default_volatile
        or action.generated_stored
        or _is_serial(action)
        or _default_rewrites_before_11(action, options)
    )


def _default_rewrites_before_11(action: Action, options: AnalysisOptions) -> bool:
    """Before PostgreSQL 11, ADD COLUMN with any non-null DEFAULT (a constant too) writes it
    into every row: only from 11 is a constant default kept in the catalog."""
    version = options.pg_version
    default = (action.default or "").strip()
    return version is not None and version.major < 11 and not _is_null(default)


# NULL, a cast of it (NULL::text, CAST(NULL AS text), as Alembic and pg_dump write a typed
# null), in parentheses or not: no value is written into any row.
_TYPE = r'[a-z_"][a-z0-9_$ ."]*(?:\([\d\s,]*\))?(?:\s*\[\s*\])*'
_NULL_DEFAULT = re.compile(
    rf"[\s(]*(?:NULL[\s)]*(?:::\s*{_TYPE}[\s)]*)*|CAST\s*\([\s(]*NULL\)*\s+AS\s+{_TYPE}\s*\))[\s)]*",
    re.IGNORECASE,
)


def _is_null(default: str) -> bool:
    return default == "" or _NULL_DEFAULT.fullmatch(default) is not None


def check_add_not_null_column(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in actions_of(stmt, ActionKind.ADD_COLUMN):
        if not action.not_null or action.default is not None or _rewrites(action, options):
            continue
        if not state.is_existing_table(action.table):
            continue
        table, column = action.table, action.column
        data_type = action.data_type or "<type>"
        yield finding(
            ADD_NOT_NULL_COLUMN,
            stmt,
            f"ADD COLUMN {table}.{column} {data_type} NOT NULL has no default: it fails if "
            f"{table} has rows",
            advice=(
                f"Add-then-backfill-then-swap (the checklist's pattern):\n"
                f"-- 1. add the column nullable\n"
                f"ALTER TABLE {table} ADD COLUMN {column} {data_type} NULL;\n"
                f"-- 2. backfill existing rows (in batches, outside the DDL transaction)\n"
                f"UPDATE {table} SET {column} = <value> WHERE {column} IS NULL;\n"
                f"-- 3. add the NOT NULL constraint (on PG >= 12 a validated\n"
                f"--    CHECK ({column} IS NOT NULL) NOT VALID constraint lets it skip the scan)\n"
                f"ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL;\n"
                f"-- 4. add the default for new rows\n"
                f"ALTER TABLE {table} ALTER COLUMN {column} SET DEFAULT <value>;\n"
                f"Or, if one constant value suits every row, a single instant statement:\n"
                f"ALTER TABLE {table} ADD COLUMN {column} {data_type} NOT NULL "
                f"DEFAULT <constant>;"
            ),
        )


def check_set_not_null(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in actions_of(stmt, ActionKind.SET_NOT_NULL):
        table, column = action.table, action.column
        if not state.is_existing_table(table):
            continue
        if state.has_validated_not_null_check(table, column):
            continue
        check = f"{bare_name(table)}_{column}_not_null"
        yield finding(
            SET_NOT_NULL,
            stmt,
            f"SET NOT NULL on {table}.{column} scans the whole table under ACCESS EXCLUSIVE",
            advice=(
                f"ALTER TABLE {table} ADD CONSTRAINT {check} "
                f"CHECK ({column} IS NOT NULL) NOT VALID;\n"
                f"ALTER TABLE {table} VALIDATE CONSTRAINT {check};\n"
                f"ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL;  "
                f"-- PG >= 12: no scan\n"
                f"ALTER TABLE {table} DROP CONSTRAINT {check};"
            ),
        )


def check_volatile_default(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in actions_of(stmt, ActionKind.ADD_COLUMN):
        if not _rewrites(action, options) or not state.is_existing_table(action.table):
            continue
        table, column = action.table, action.column
        data_type = action.data_type or "<type>"
        if action.generated_stored:
            cause = "is GENERATED ... STORED"
        elif action.identity:
            cause = "is an identity column (every existing row gets a sequence value)"
        elif _is_serial(action):
            cause = f"is {data_type} (a nextval() default)"
        elif not action.default_volatile and _default_rewrites_before_11(action, options):
            cause = (
                f"has the default {action.default}: on PostgreSQL {options.pg_version} (before "
                f"11) any default is written into every row"
            )
        elif action.default is not None:
            cause = f"has the volatile default {action.default}"
        else:
            cause = "has a volatile default"
        yield finding(
            VOLATILE_DEFAULT,
            stmt,
            f"ADD COLUMN {table}.{column} {cause}: PostgreSQL rewrites {table} under "
            f"ACCESS EXCLUSIVE",
            advice=_identity_advice(action) if action.identity else _default_advice(action),
        )


def _default_advice(action: Action) -> str:
    table, column = action.table, action.column
    data_type = action.data_type or "<type>"
    new_type = _SERIAL_TYPES.get(data_type.lower(), data_type)
    default = action.default or "<expression>"
    sequence = ""
    if _is_serial(action):
        sequence_name = f"{bare_name(table)}_{column}_seq"
        default = f"nextval('{sequence_name}')"
        sequence = f"CREATE SEQUENCE {sequence_name} OWNED BY {table}.{column};\n"
    return (
        f"ALTER TABLE {table} ADD COLUMN {column} {new_type} NULL;\n"
        f"{sequence}"
        f"ALTER TABLE {table} ALTER COLUMN {column} SET DEFAULT {default};  "
        f"-- new rows only\n"
        f"-- then backfill existing rows in batches, outside the DDL transaction:\n"
        f"UPDATE {table} SET {column} = {default} WHERE {column} IS NULL;"
    )


def _identity_advice(action: Action) -> str:
    """Add the column plain, number the existing rows in batches, then make it an identity."""
    table, column = action.table, action.column
    data_type = action.data_type or "bigint"
    sequence = f"{bare_name(table)}_{column}_backfill_seq"
    return (
        f"ALTER TABLE {table} ADD COLUMN {column} {data_type} NULL;\n"
        f"CREATE SEQUENCE {sequence};\n"
        f"-- number existing rows in batches, outside the DDL transaction:\n"
        f"UPDATE {table} SET {column} = nextval('{sequence}') WHERE {column} IS NULL;\n"
        f"-- then (a validated CHECK ({column} IS NOT NULL) first lets PG >= 12 skip the scan):\n"
        f"ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL;\n"
        f"ALTER TABLE {table} ALTER COLUMN {column} ADD GENERATED BY DEFAULT AS IDENTITY;\n"
        f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
        f"(SELECT max({column}) FROM {table}));\n"
        f"DROP SEQUENCE {sequence};"
    )


RULES: tuple[Rule, ...] = (
    Rule(
        ADD_NOT_NULL_COLUMN,
        Stage.SQL,
        "add it nullable, backfill in batches, then SET NOT NULL (or use a constant default)",
        judges=(ActionKind.ADD_COLUMN,),
        check=check_add_not_null_column,
        points_at=PointsAt.ADD_COLUMN,
    ),
    Rule(
        SET_NOT_NULL,
        Stage.SQL,
        "ADD CHECK (col IS NOT NULL) NOT VALID, VALIDATE it, then SET NOT NULL (PostgreSQL 12+)",
        judges=(ActionKind.SET_NOT_NULL,),
        check=check_set_not_null,
        points_at=PointsAt.SET_NOT_NULL,
    ),
    Rule(
        VOLATILE_DEFAULT,
        Stage.SQL,
        "add it without a default, SET DEFAULT for new rows, backfill old rows in batches",
        judges=(ActionKind.ADD_COLUMN,),
        check=check_volatile_default,
        points_at=PointsAt.ADD_COLUMN,
    ),
)
