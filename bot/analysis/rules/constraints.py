"""Constraints added to existing tables: validate without blocking, build unique indexes first."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from bot.analysis.model import (
    Action,
    ActionKind,
    Family,
    Finding,
    RuleInfo,
    Severity,
    Statement,
)
from bot.analysis.rules.base import (
    AUTOCOMMIT_HINT,
    Check,
    actions_of,
    bare_name,
    column_list,
    finding,
    py_list,
)
from bot.analysis.state import StreamState

if TYPE_CHECKING:
    from bot.analysis.options import AnalysisOptions

ADD_FOREIGN_KEY_VALIDATED = RuleInfo(
    id="add-foreign-key-validated",
    family=Family.LOCKING,
    default_severity=Severity.ERROR,
    summary="FOREIGN KEY added to an existing table without NOT VALID",
    explanation=(
        "Adding a foreign key checks every existing row while holding a SHARE ROW EXCLUSIVE "
        "lock on both the table and the referenced table: writes to both wait for the whole "
        "scan. (A foreign key on a brand-new table still takes that lock on the referenced "
        "table, briefly, as there are no rows to check.) Add it with NOT VALID, which is "
        "instant and enforces it for new rows, then VALIDATE CONSTRAINT, ideally in a separate "
        "transaction: validation scans under a SHARE UPDATE EXCLUSIVE lock that lets reads and "
        "writes go on. In Alembic: `op.create_foreign_key(..., postgresql_not_valid=True)`."
    ),
)

ADD_CHECK_CONSTRAINT_VALIDATED = RuleInfo(
    id="add-check-constraint-validated",
    family=Family.LOCKING,
    default_severity=Severity.ERROR,
    summary="CHECK constraint added to an existing table without NOT VALID",
    explanation=(
        "Adding a CHECK constraint scans the whole table under an ACCESS EXCLUSIVE lock: no "
        "reads or writes until it is done. Add it with NOT VALID (instant; new rows are "
        "checked) and VALIDATE CONSTRAINT afterwards, ideally in a separate transaction: "
        "validation scans under a SHARE UPDATE EXCLUSIVE lock that lets reads and writes go "
        "on. In Alembic: `op.create_check_constraint(..., postgresql_not_valid=True)`."
    ),
)

ADD_UNIQUE_CONSTRAINT = RuleInfo(
    id="add-unique-constraint",
    family=Family.LOCKING,
    default_severity=Severity.ERROR,
    summary="UNIQUE or PRIMARY KEY constraint built on an existing table under ACCESS EXCLUSIVE",
    explanation=(
        "ADD CONSTRAINT ... UNIQUE (or PRIMARY KEY) builds its index while holding an ACCESS "
        "EXCLUSIVE lock: no reads or writes for the whole build. Build the index first with "
        "CREATE UNIQUE INDEX CONCURRENTLY (outside the transaction: "
        "`op.get_context().autocommit_block()`), then attach it with "
        "`ADD CONSTRAINT ... UNIQUE USING INDEX`, which is instant."
    ),
)


def _not_valid_statement(stmt: Statement, action: Action, definition: str) -> str:
    """This statement with NOT VALID, or a rebuilt one when the ALTER does several things."""
    if len(stmt.actions) == 1:
        return f"{stmt.sql.strip().rstrip(';')} NOT VALID;"
    return f"ALTER TABLE {action.table} ADD CONSTRAINT {action.name} {definition} NOT VALID;"


def check_foreign_key(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in actions_of(stmt, ActionKind.ADD_CONSTRAINT):
        if action.constraint_type != "foreign_key" or action.not_valid:
            continue
        if not state.is_existing_table(action.table):
            continue
        table, name = action.table, action.name or f"{bare_name(action.table)}_fkey"
        columns = column_list(action.columns) or "<columns>"
        definition = f"FOREIGN KEY ({columns}) REFERENCES {action.references}"
        yield finding(
            ADD_FOREIGN_KEY_VALIDATED,
            stmt,
            f"FOREIGN KEY {name} on {table} is validated at once: every row of {table} is "
            f"checked while writes to {table} and {action.references} wait",
            advice=(
                f"{_not_valid_statement(stmt, action, definition)}\n"
                f"-- then, ideally in a separate transaction or migration:\n"
                f"ALTER TABLE {table} VALIDATE CONSTRAINT {name};\n"
                f"# in Alembic: op.create_foreign_key(..., postgresql_not_valid=True), then\n"
                f'# op.execute("ALTER TABLE {table} VALIDATE CONSTRAINT {name}")'
            ),
        )


def check_check_constraint(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in actions_of(stmt, ActionKind.ADD_CONSTRAINT):
        if action.constraint_type != "check" or action.not_valid:
            continue
        if not state.is_existing_table(action.table):
            continue
        table, name = action.table, action.name or f"{bare_name(action.table)}_check"
        yield finding(
            ADD_CHECK_CONSTRAINT_VALIDATED,
            stmt,
            f"CHECK constraint {name} on {table} scans every row under ACCESS EXCLUSIVE",
            advice=(
                f"{_not_valid_statement(stmt, action, 'CHECK (<condition>)')}\n"
                f"-- then, ideally in a separate transaction or migration:\n"
                f"ALTER TABLE {table} VALIDATE CONSTRAINT {name};\n"
                f"# in Alembic: op.create_check_constraint(..., postgresql_not_valid=True), then\n"
                f'# op.execute("ALTER TABLE {table} VALIDATE CONSTRAINT {name}")'
            ),
        )


_UNIQUE_TYPES = {"unique": "UNIQUE", "primary_key": "PRIMARY KEY"}


def check_unique_constraint(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in actions_of(stmt, ActionKind.ADD_CONSTRAINT):
        keyword = _UNIQUE_TYPES.get(action.constraint_type or "")
        if keyword is None or action.using_index:
            continue
        if not state.is_existing_table(action.table):
            continue
        table = action.table
        suffix = "pkey" if action.constraint_type == "primary_key" else "key"
        name = action.name or f"{bare_name(table)}_{'_'.join(action.columns)}_{suffix}"
        columns = column_list(action.columns) or "<columns>"
        yield finding(
            ADD_UNIQUE_CONSTRAINT,
            stmt,
            f"{keyword} constraint {name} on {table} builds its index under ACCESS EXCLUSIVE",
            advice=(
                f"CREATE UNIQUE INDEX CONCURRENTLY {name} ON {table} ({columns});\n"
                f"ALTER TABLE {table} ADD CONSTRAINT {name} {keyword} USING INDEX {name};\n"
                f"# in Alembic:\n"
                f"{AUTOCOMMIT_HINT}\n"
                f'    op.create_index("{name}", "{table}", {py_list(action.columns)}, '
                f"unique=True, postgresql_concurrently=True)\n"
                f'op.execute("ALTER TABLE {table} ADD CONSTRAINT {name} {keyword} '
                f'USING INDEX {name}")'
            ),
        )


RULES: list[tuple[RuleInfo, Check]] = [
    (ADD_FOREIGN_KEY_VALIDATED, check_foreign_key),
    (ADD_CHECK_CONSTRAINT_VALIDATED, check_check_constraint),
    (ADD_UNIQUE_CONSTRAINT, check_unique_constraint),
]
KINDS: dict[str, tuple[ActionKind, ...]] = {
    ADD_FOREIGN_KEY_VALIDATED.id: (ActionKind.ADD_CONSTRAINT,),
    ADD_CHECK_CONSTRAINT_VALIDATED.id: (ActionKind.ADD_CONSTRAINT,),
    ADD_UNIQUE_CONSTRAINT.id: (ActionKind.ADD_CONSTRAINT,),
}
