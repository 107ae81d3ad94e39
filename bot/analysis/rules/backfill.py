"""Data changes inside the DDL transaction: they hold every lock taken before them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from bot.analysis.model import ActionKind, Family, Finding, RuleInfo, Severity, Statement
from bot.analysis.rules.base import Check, finding
from bot.analysis.state import StreamState

if TYPE_CHECKING:
    from bot.analysis.engine import AnalysisOptions

BACKFILL_IN_MIGRATION = RuleInfo(
    id="backfill-in-migration",
    family=Family.LOCKING,
    default_severity=Severity.WARNING,
    summary="UPDATE or DELETE of an existing table inside the DDL transaction",
    explanation=(
        "Alembic runs all pending revisions in one transaction: an UPDATE or DELETE there "
        "touches every matching row in one go and keeps every lock taken earlier in the "
        "transaction (an ALTER TABLE's ACCESS EXCLUSIVE lock included) until the final COMMIT. "
        "On a big table that is minutes of blocked traffic, and a long rollback if it fails. "
        "Backfill in batches outside the DDL transaction: a separate revision whose statements "
        "run in `op.get_context().autocommit_block()`, or a data-migration job, updating a few "
        "thousand rows per transaction."
    ),
)


def check_backfill(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    if not state.in_transaction:
        return
    for action in stmt.actions:
        if action.kind not in (ActionKind.UPDATE, ActionKind.DELETE):
            continue
        table = action.table
        if not state.is_existing_table(table):
            continue
        verb = action.kind.value.upper()
        scope = "rows matching its WHERE clause" if action.has_where else "every row (no WHERE)"
        yield finding(
            BACKFILL_IN_MIGRATION,
            stmt,
            f"{verb} of {table} inside the migration's transaction touches {scope} in one "
            f"go, holding the transaction's locks until COMMIT",
            advice=(
                f"Run it in batches outside the DDL transaction, e.g. repeat until no row "
                f"is left:\n"
                f"{_batch(verb, table)} WHERE id IN (SELECT id FROM {table} "
                f"WHERE <condition> LIMIT 5000);  -- id: the primary key\n"
                f"# in Alembic, after the DDL:\n"
                f"with op.get_context().autocommit_block():\n"
                f"    op.execute(<one batch>)  # or a data-migration job"
            ),
        )


def _batch(verb: str, table: str | None) -> str:
    return f"UPDATE {table} SET <assignments>" if verb == "UPDATE" else f"DELETE FROM {table}"


RULES: list[tuple[RuleInfo, Check]] = [(BACKFILL_IN_MIGRATION, check_backfill)]
KINDS: dict[str, tuple[ActionKind, ...]] = {
    BACKFILL_IN_MIGRATION.id: (ActionKind.UPDATE, ActionKind.DELETE)
}
