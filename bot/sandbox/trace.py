"""From the child's raw trace to statements and lock spans (pure).

The child runs the repository's code, so its records are validated field by field: a record
that is not a statement (no SQL text) is dropped, a field of the wrong type is replaced by
its default, and both are counted so that the report can say so.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.analysis.migration_model import MigrationFile
from bot.analysis.origins import Refused, vouched
from bot.analysis.sandbox_model import LockSpan, TracedStatement

DEFAULT_VERSION_TABLE = "alembic_version"


@dataclass
class Trace:
    statements: list[TracedStatement] = field(default_factory=list)
    malformed: int = 0  # records dropped or sanitised


def read_trace(
    raw: list[Any],
    revision_by_path: Mapping[str, str],
    version_table: str = DEFAULT_VERSION_TABLE,
) -> Trace:
    """The child's records as TracedStatements, minus Alembic's version bookkeeping."""
    trace = Trace()
    for record in raw:
        statement, malformed = clean_record(record, revision_by_path)
        trace.malformed += malformed
        if statement is None:
            continue
        bookkeeping = isinstance(record, dict) and record.get("bookkeeping") is True
        if not _is_bookkeeping(statement, bookkeeping, version_table):
            trace.statements.append(statement)
    return trace


def traced_statements(
    raw: list[Any],
    revision_by_path: Mapping[str, str],
    version_table: str = DEFAULT_VERSION_TABLE,
) -> list[TracedStatement]:
    return read_trace(raw, revision_by_path, version_table).statements


def clean_record(
    record: object, revision_by_path: Mapping[str, str]
) -> tuple[TracedStatement | None, bool]:
    """(the statement, or None when the record has no SQL text; whether it was malformed)."""
    if not isinstance(record, dict) or not isinstance(record.get("sql"), str):
        return None, True
    fields = _Fields(record)
    path = fields.optional("path", str)
    statement = TracedStatement(
        sql=record["sql"],
        start_s=fields.seconds("start"),
        duration_s=fields.seconds("duration"),
        path=path,
        line=fields.optional("line", int),
        revision=revision_by_path.get(path) if path else None,
        locks=fields.locks(),
        rewritten=fields.strings("rewritten"),
        lock_timeout=fields.optional("lock_timeout", str),
        statement_timeout=fields.optional("statement_timeout", str),
        autocommit=fields.optional("autocommit", bool) is True,
        error=fields.optional("error", str),
    )
    fields.optional("bookkeeping", bool)
    return statement, fields.malformed


def vouch_trace(trace: list[TracedStatement], files: Mapping[str, MigrationFile]) -> list[Refused]:
    """Only the file:line the parent's own scan of the revision files can vouch for stays on
    each statement (in place): the child could say anything (`bot.analysis.origins`)."""
    refused: list[Refused] = []
    for statement in trace:
        statement.path, statement.line, rejected = vouched(
            statement.sql, statement.path, statement.line, files
        )
        if rejected is not None:
            statement.revision = files[rejected.path].revision if rejected.path else None
            refused.append(rejected)
    return refused


class _Fields:
    """Reads a record's fields, noting any of the wrong type (which reads as absent)."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record
        self.malformed = False

    def optional(self, key: str, kind: type[Any]) -> Any:
        value = self.record.get(key)
        # bool is an int: a line number of True is as malformed as one of "7".
        if value is None or (isinstance(value, kind) and (kind is bool) == (type(value) is bool)):
            return value
        self.malformed = True
        return None

    def seconds(self, key: str) -> float:
        value = self.record.get(key, 0.0)
        if _is_number(value) and math.isfinite(value) and value >= 0:
            return float(value)
        self.malformed = True
        return 0.0

    def strings(self, key: str) -> list[str]:
        values = self._list(key)
        kept = [value for value in values if isinstance(value, str)]
        self.malformed |= len(kept) != len(values)
        return kept

    def locks(self) -> list[tuple[str, str]]:
        values = self._list("locks")
        kept = [
            (lock[0], lock[1])
            for lock in values
            if isinstance(lock, (list, tuple))
            and len(lock) == 2
            and all(isinstance(part, str) for part in lock)
        ]
        self.malformed |= len(kept) != len(values)
        return kept

    def _list(self, key: str) -> list[Any]:
        value = self.record.get(key, [])
        if isinstance(value, list):
            return value
        self.malformed = True
        return []


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_bookkeeping(statement: TracedStatement, flagged: bool, version_table: str) -> bool:
    """Only what no migration file emitted can be bookkeeping: Alembic's writes to its
    version table (by name, not by a mention a comment could carry) and the catalog reads
    SQLAlchemy and Alembic make on their own. Statements env.py sends, like SET, stay."""
    if statement.path is not None:
        return False
    lowered = statement.sql.lstrip().lower()
    if lowered.startswith(("select", "show")):
        return True
    return flagged or _writes_version_table(statement.sql, version_table)


def _writes_version_table(sql: str, version_table: str) -> bool:
    """One statement creating, writing or dropping the version table, as Alembic words it."""
    if ";" in sql.strip().rstrip(";"):
        return False
    schema, _, name = version_table.rpartition(".")
    target = _name_pattern(name)
    if schema:
        target = f"(?:{_name_pattern(schema)}\\.)?{target}"
    verbs = r"(?:create\s+table|insert\s+into|update|delete\s+from|drop\s+table)"
    pattern = rf"\s*{verbs}\s+{target}(?=[\s(]|$)"
    return re.match(pattern, sql, flags=re.IGNORECASE) is not None


def _name_pattern(name: str) -> str:
    bare = name.strip('"')
    return f'(?:{re.escape(bare)}|"{re.escape(bare)}")'


def lock_spans(trace: list[TracedStatement], commits: list[float]) -> list[LockSpan]:
    """How long each lock was held: from the statement that took it to the end of its
    transaction (the next commit), across every statement in between.

    One pass over the statements, each span's end and last statement found by bisection
    (O(n log n)): the commits sorted; for the last statement, the latest one starting by the
    span's end, found in the suffix minima of the start times (nondecreasing, so bisectable,
    and right whatever order the child's times come in)."""
    spans: list[LockSpan] = []
    if not trace:
        return spans
    run_end = max(s.start_s + s.duration_s for s in trace)
    ordered_commits = sorted(commits)
    # suffix_min[j]: the earliest start among statements j..n-1. The latest j with
    # suffix_min[j] <= end is the latest statement that starts by `end`.
    suffix_min = [s.start_s for s in trace]
    for j in range(len(trace) - 2, -1, -1):
        suffix_min[j] = min(suffix_min[j], suffix_min[j + 1])
    for index, statement in enumerate(trace):
        if not statement.locks:
            continue
        taken_end = statement.start_s + statement.duration_s
        if statement.autocommit:
            end = taken_end
        else:
            position = bisect.bisect_left(ordered_commits, taken_end)
            end = ordered_commits[position] if position < len(ordered_commits) else run_end
        last = max(index, bisect.bisect_right(suffix_min, end) - 1)
        for relation, mode in statement.locks:
            spans.append(LockSpan(relation, mode, index, last, statement.start_s, end))
    return spans
