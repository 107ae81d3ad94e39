"""Destructive operations found in the source of new revisions, without running them.

The same ids as the SQL rules (which own their explanations): these findings exist even
when the dry-run cannot run, and are cross-checked with the SQL. Only `upgrade()` counts,
and only objects that existed before the change: dropping a table, column or index that
an earlier new revision created loses nothing. Pass the files in upgrade order.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from bot.analysis.migration_model import MigrationFile, OpCall
from bot.analysis.model import Finding, Severity
from bot.analysis.rules import destructive
from bot.analysis.state import name_key

# Every id emitted here is owned by the SQL rules (bot.analysis.rules.destructive).
DROP_TABLE = destructive.DROP_TABLE.id
DROP_COLUMN = destructive.DROP_COLUMN.id
DROP_INDEX = destructive.DROP_INDEX.id
ALTER_COLUMN_TYPE = destructive.ALTER_COLUMN_TYPE.id
TRUNCATE_TABLE = destructive.TRUNCATE_TABLE.id

_UNKNOWN = "<not a literal>"
_TRUNCATE = re.compile(
    r"^TRUNCATE\s+(?:TABLE\s+)?(?P<tables>.+?)"
    r"(?:\s+(?:RESTART|CONTINUE)\s+IDENTITY)?(?:\s+(?:CASCADE|RESTRICT))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_SQL_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)


@dataclass
class _Created:
    """Objects created by earlier new revisions (names as `name_key` makes them)."""

    tables: set[str] = field(default_factory=set)
    columns: set[tuple[str, str]] = field(default_factory=set)
    indexes: set[str] = field(default_factory=set)


def static_findings(files: list[MigrationFile]) -> list[Finding]:
    """Findings for the destructive `op.*` calls in the upgrade() of new files."""
    created = _Created()
    findings: list[Finding] = []
    for migration in files:
        if not migration.new:
            continue
        calls = [call for call in migration.ops if call.function == "upgrade"]
        for position, call in enumerate(calls):
            if _is_rebuild(call, calls[position + 1 :]):
                continue
            findings.extend(
                _finding(migration, call, rule, message) for rule, message in _check(call, created)
            )
            _remember(call, created)
    return findings


def _is_rebuild(call: OpCall, after: list[OpCall]) -> bool:
    """op.drop_index directly followed by op.create_index of the same name, on the same
    table and schema where both say: a rebuild (e.g. retrying a failed concurrent build)."""
    following = next((c for c in after if c.name != "get_context"), None)
    if call.name != "drop_index" or following is None or following.name != "create_index":
        return False
    index = _arg(call, 0, "index_name")
    if not isinstance(index, str) or index != _arg(following, 0, "index_name"):
        return False
    dropped_on, created_on = _arg(call, 1, "table_name"), _arg(following, 1, "table_name")
    if dropped_on is not None and created_on is not None and dropped_on != created_on:
        return False
    return call.kwargs.get("schema") == following.kwargs.get("schema")


def _finding(migration: MigrationFile, call: OpCall, rule: str, message: str) -> Finding:
    return Finding(
        rule=rule,
        severity=Severity.ERROR,
        message=message,
        path=migration.path,
        line=call.line,
        revision=migration.revision,
        phase="upgrade",
        source="static",
    )


def _check(call: OpCall, created: _Created) -> Iterator[tuple[str, str]]:
    if call.name == "drop_table":
        table = _table(call, 0)
        if _key(table) not in created.tables:
            yield DROP_TABLE, f"op.drop_table drops table {table} and all of its rows"
    elif call.name == "drop_column":
        table, column = _table(call, 0), _text(_arg(call, 1, "column_name"))
        if not _is_created_column(created, table, column):
            yield DROP_COLUMN, f"op.drop_column drops column {table}.{column} and its data"
    elif call.name == "drop_index":
        index = _text(_arg(call, 0, "index_name"))
        if _key(index) not in created.indexes:
            index_table = _arg(call, 1, "table_name")
            on_table = f" on {_qualified(index_table, call)}" if index_table is not None else ""
            yield DROP_INDEX, f"op.drop_index drops index {index}{on_table}"
    elif call.name == "alter_column" and "type_" in call.kwargs:
        table, column = _table(call, 0), _text(_arg(call, 1, "column_name"))
        if not _is_created_column(created, table, column):
            yield (
                ALTER_COLUMN_TYPE,
                f"op.alter_column changes the type of {table}.{column}: the table may be "
                f"rewritten and data converted or lost",
            )
    elif call.name == "execute":
        for tables in _truncated_tables(_arg(call, 0, "sqltext")):
            existing = [table for table in tables if _key(table) not in created.tables]
            if existing:
                yield (
                    TRUNCATE_TABLE,
                    f"op.execute runs TRUNCATE {', '.join(existing)}: every row is deleted",
                )


def _remember(call: OpCall, created: _Created) -> None:
    if call.name == "create_table":
        created.tables.add(_key(_table(call, 0)))
    elif call.name == "add_column":
        column = _arg(call, 1, "column")
        name = column.get("column") if isinstance(column, dict) else None
        if isinstance(name, str):
            created.columns.add((_key(_table(call, 0)), name))
    elif call.name == "create_index":
        created.indexes.add(_key(_text(_arg(call, 0, "index_name"))))


def _is_created_column(created: _Created, table: str, column: str) -> bool:
    return _key(table) in created.tables or (_key(table), column) in created.columns


def _arg(call: OpCall, position: int, keyword: str) -> object:
    if len(call.args) > position:
        return call.args[position]
    return call.kwargs.get(keyword)


def _table(call: OpCall, position: int) -> str:
    return _qualified(_arg(call, position, "table_name"), call)


def _qualified(table: object, call: OpCall) -> str:
    schema = call.kwargs.get("schema")
    name = _text(table)
    return f"{schema}.{name}" if isinstance(schema, str) and schema else name


def _text(value: object) -> str:
    return value if isinstance(value, str) and value else _UNKNOWN


def _key(name: str) -> str:
    """As the SQL rules: no quotes, no default `public.` schema."""
    return name_key(name)


def _truncated_tables(sql: object) -> Iterator[list[str]]:
    """The tables of each TRUNCATE statement in a literal SQL string."""
    if not isinstance(sql, str):
        return
    for statement in _SQL_COMMENT.sub(" ", sql).split(";"):
        match = _TRUNCATE.match(statement.strip())
        if match:
            yield [_truncate_target(part) for part in match.group("tables").split(",")]


def _truncate_target(part: str) -> str:
    name = part.strip().removesuffix("*").strip()
    return re.sub(r"^ONLY\s+", "", name, flags=re.IGNORECASE)
