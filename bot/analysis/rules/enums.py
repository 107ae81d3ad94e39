"""Enum values: renaming one breaks the release still running during the deploy, and
before PostgreSQL 12 adding one is refused inside a transaction block."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from bot.analysis.model import ActionKind, Family, Finding, RuleInfo, Severity, Statement
from bot.analysis.rule import Rule, Stage
from bot.analysis.rules.base import AUTOCOMMIT_HINT, actions_of, finding
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

ADD_ENUM_VALUE_IN_TRANSACTION = RuleInfo(
    id="add-enum-value-in-transaction",
    family=Family.LOCKING,
    default_severity=Severity.ERROR,
    summary="ALTER TYPE ... ADD VALUE inside a transaction block on PostgreSQL before 12",
    explanation=(
        "Before PostgreSQL 12, ALTER TYPE ... ADD VALUE cannot run inside a transaction "
        "block (unless the enum was created in the same transaction): PostgreSQL refuses it, "
        "and Alembic runs migrations inside one by default, so the migration fails when it "
        "is deployed. Run it in `with op.get_context().autocommit_block():`. From 12 on it "
        "may run in a transaction, but the new value cannot be used before it commits."
    ),
)

_ADD_VALUE_IN_TRANSACTION_SINCE = 12


def check_add_enum_value_in_transaction(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    version = options.pg_version
    if version is None or version.major >= _ADD_VALUE_IN_TRANSACTION_SINCE:
        return  # unknown: a current server, which allows it
    if not state.in_transaction and len(stmt.actions) == 1:
        return  # a multi-statement string runs as one implicit transaction
    for action in actions_of(stmt, ActionKind.ALTER_TYPE_ADD_VALUE):
        if state.is_new_object("type", action.name):
            continue  # allowed for an enum created in the same transaction
        yield finding(
            ADD_ENUM_VALUE_IN_TRANSACTION,
            stmt,
            f"ALTER TYPE {action.name} ADD VALUE runs inside a transaction block: PostgreSQL "
            f"{version} (before 12) refuses it",
            advice=f"{AUTOCOMMIT_HINT}\n    op.execute({stmt.sql.strip().rstrip(';')!r})",
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
    Rule(
        ADD_ENUM_VALUE_IN_TRANSACTION,
        Stage.SQL,
        "before PostgreSQL 12, ALTER TYPE ... ADD VALUE in an autocommit_block()",
        judges=(ActionKind.ALTER_TYPE_ADD_VALUE,),
        check=check_add_enum_value_in_transaction,
    ),
)
