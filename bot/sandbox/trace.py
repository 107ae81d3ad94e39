"""From the child's raw trace to statements and lock spans (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.sandbox.model import LockSpan, TracedStatement


def traced_statements(
    raw: list[dict[str, Any]], revision_by_path: Mapping[str, str]
) -> list[TracedStatement]:
    """The child's records as TracedStatements, minus Alembic's version bookkeeping."""
    statements = []
    for record in raw:
        if record.get("bookkeeping") or _is_bookkeeping(record["sql"], record.get("path")):
            continue
        path = record.get("path")
        statements.append(
            TracedStatement(
                sql=record["sql"],
                start_s=float(record.get("start", 0.0)),
                duration_s=float(record.get("duration", 0.0)),
                path=path,
                line=record.get("line"),
                revision=revision_by_path.get(path) if path else None,
                locks=[(rel, mode) for rel, mode in record.get("locks", [])],
                rewritten=list(record.get("rewritten", [])),
                lock_timeout=record.get("lock_timeout"),
                statement_timeout=record.get("statement_timeout"),
                autocommit=bool(record.get("autocommit", False)),
                error=record.get("error"),
            )
        )
    return statements


def _is_bookkeeping(sql: str, path: str | None) -> bool:
    """Alembic's version table, and the catalog reads SQLAlchemy and Alembic make on their
    own (no migration file on the stack); statements env.py sends, like SET, stay."""
    lowered = sql.lstrip().lower()
    if "alembic_version" in lowered:
        return True
    return path is None and lowered.startswith(("select", "show"))


def lock_spans(trace: list[TracedStatement], commits: list[float]) -> list[LockSpan]:
    """How long each lock was held: from the statement that took it to the end of its
    transaction (the next commit), across every statement in between."""
    spans = []
    run_end = max((s.start_s + s.duration_s for s in trace), default=0.0)
    for index, statement in enumerate(trace):
        taken_end = statement.start_s + statement.duration_s
        if statement.autocommit:
            end = taken_end
        else:
            end = min((c for c in commits if c >= taken_end), default=run_end)
        last = index
        for later in range(index + 1, len(trace)):
            if trace[later].start_s <= end:
                last = later
        for relation, mode in statement.locks:
            spans.append(LockSpan(relation, mode, index, last, statement.start_s, end))
    return spans
