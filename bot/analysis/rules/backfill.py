"""Data changes inside the DDL transaction: they hold every lock taken before them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from bot.analysis.model import ActionKind, Family, Finding, RuleInfo, Severity, Statement
from bot.analysis.rules.base import Check, finding
from bot.analysis.state import StreamState

if TYPE_CHECKING:
    from bot.analysis.options import AnalysisOptions

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
        batch = _batch(verb, table, stmt.sql)
        yield finding(
            BACKFILL_IN_MIGRATION,
            stmt,
            f"{verb} of {table} inside the migration's transaction touches {scope} in one "
            f"go, holding the transaction's locks until COMMIT",
            advice=(
                f"Run it in batches outside the DDL transaction, e.g. repeat until no row "
                f"is left:\n"
                f"{batch}  -- id: the primary key\n"
                f"# in Alembic, after the DDL:\n"
                f"with op.get_context().autocommit_block():\n"
                f"    op.execute(batch)  # the statement above, until it touches no row; "
                f"or a data-migration job"
            ),
        )


_UPDATE = re.compile(
    r"^\s*UPDATE\s+(?:ONLY\s+)?\S+(?:\s+(?:AS\s+)?\w+)?\s+SET\s+(?P<set>.+?)"
    r"(?:\s+FROM\s+.+?)?(?:\s+WHERE\s+(?P<where>.+?))?(?:\s+RETURNING\s+.+)?\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_DELETE = re.compile(
    r"^\s*DELETE\s+FROM\s+.+?\s+WHERE\s+(?P<where>.+?)(?:\s+RETURNING\s+.+)?\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)
# One simple `column = value` assignment: its rows left to do are those that differ.
_ASSIGNMENT = re.compile(r"^(?P<column>[A-Za-z_][\w$]*)\s*=\s*(?P<value>.+)$", re.DOTALL)


def _batch(verb: str, table: str | None, sql: str) -> str:
    """The statement, as one batch of 5000 rows of its own table, with its own assignments
    and condition."""
    if verb == "UPDATE":
        match = _UPDATE.match(sql)
        assignments = match.group("set").strip() if match else "..."
        where = match.group("where") if match else None
        condition = where.strip() if where else _not_done(assignments)
        head = f"UPDATE {table} SET {assignments}"
    else:
        match = _DELETE.match(sql)
        condition = match.group("where").strip() if match else None
        head = f"DELETE FROM {table}"
    selected = f"SELECT id FROM {table}" + (f" WHERE {condition}" if condition else "")
    return f"{head} WHERE id IN ({selected} LIMIT 5000);"


def _not_done(assignments: str) -> str:
    """For `SET a = x, b = y`, the rows still to do: those where (a, b) differs."""
    pairs = [_ASSIGNMENT.match(part.strip()) for part in _top_level(assignments)]
    if not pairs or any(pair is None for pair in pairs):
        return "<rows not yet done>"
    columns = [pair.group("column") for pair in pairs if pair is not None]
    values = [pair.group("value").strip() for pair in pairs if pair is not None]
    if len(columns) == 1:
        return f"{columns[0]} IS DISTINCT FROM {values[0]}"
    return f"({', '.join(columns)}) IS DISTINCT FROM ({', '.join(values)})"


def _top_level(text: str) -> list[str]:
    """`text` split at the commas outside parentheses and quotes."""
    parts, depth, quoted, start = [], 0, False, 0
    for position, char in enumerate(text):
        if char == "'":
            quoted = not quoted
        elif not quoted and char in "([":
            depth += 1
        elif not quoted and char in ")]":
            depth -= 1
        elif not quoted and depth == 0 and char == ",":
            parts.append(text[start:position])
            start = position + 1
    return [*parts, text[start:]]


RULES: list[tuple[RuleInfo, Check]] = [(BACKFILL_IN_MIGRATION, check_backfill)]
KINDS: dict[str, tuple[ActionKind, ...]] = {
    BACKFILL_IN_MIGRATION.id: (ActionKind.UPDATE, ActionKind.DELETE)
}
