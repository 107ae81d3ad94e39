"""sqlglot, set up once, and reading names, types and expressions out of its trees."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

DIALECT = Dialect.get_or_raise("postgres")


class _DropCommandFallbackWarning(logging.Filter):
    """sqlglot logs a warning for every statement it keeps as a Command; we handle those."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Falling back to parsing as a 'Command'" not in str(record.msg)


logging.getLogger("sqlglot").addFilter(_DropCommandFallbackWarning())


_PER_THREAD = threading.local()


def parse(sql: str) -> list[exp.Expr | None]:
    """`sqlglot.parse(sql, read="postgres")`, reusing one tokenizer and parser per thread.

    Building them costs about a fifth of a short statement's parse time.
    """
    tools = getattr(_PER_THREAD, "tools", None)
    if tools is None:
        tools = _PER_THREAD.tools = (DIALECT.tokenizer(), DIALECT.parser())
    tokenizer, parser = tools
    return parser.parse(tokenizer.tokenize(sql), sql)


def ident(node: exp.Expression | str | None) -> str | None:
    """A name as PostgreSQL folds it: lower-cased unless quoted."""
    if node is None:
        return None
    if isinstance(node, str):
        return node.lower()
    if isinstance(node, exp.Identifier):
        name = str(node.this)
        return name if node.args.get("quoted") else name.lower()
    if isinstance(node, exp.Column | exp.Table):
        return qualified(node)
    return str(node.name).lower() or None


def qualified(node: exp.Expression) -> str | None:
    """`schema.table` (or `table.column`) as written, each part folded."""
    args = node.args
    keys = ("catalog", "db", "this") if isinstance(node, exp.Table) else ("db", "table", "this")
    parts = [ident(args.get(key)) for key in keys if args.get(key) is not None]
    return ".".join(part for part in parts if part) or None


def table_of(node: exp.Expression | None) -> str | None:
    """The table name of a Table, or of a Schema wrapping one (`t (a, b)`)."""
    if isinstance(node, exp.Schema):
        node = node.this
    return qualified(node) if isinstance(node, exp.Table) else None


def column_names(nodes: Iterable[exp.Expression]) -> tuple[str, ...]:
    names: list[str] = []
    for node in nodes:
        inner = node.this if isinstance(node, exp.Ordered) else node
        if isinstance(inner, exp.Identifier | exp.Column):
            names.append(ident(inner.this if isinstance(inner, exp.Column) else inner) or "")
        else:
            names.append(to_sql(inner))
    return tuple(names)


_TYPE_TEXT: dict[tuple[object, ...], str] = {}


def type_sql(node: exp.Expression) -> str:
    """SQL text of a data type; common shapes are memoised since generating costs ~10 µs.

    A user-defined type (also `serial4`, unknown to sqlglot) is not: its name is not in the key."""
    params = node.expressions
    if node.this is exp.DataType.Type.USERDEFINED or not all(
        isinstance(p, exp.DataTypeParam) and isinstance(p.this, exp.Literal) for p in params
    ):
        return to_sql(node)
    key = (node.this, *(p.this.this for p in params))
    text = _TYPE_TEXT.get(key)
    if text is None:
        text = to_sql(node)
        if len(_TYPE_TEXT) < 4096:
            _TYPE_TEXT[key] = text
    return text


def to_sql(node: exp.Expression) -> str:
    if isinstance(node, exp.Literal):
        value = str(node.this)
        return "'" + value.replace("'", "''") + "'" if node.is_string else value
    return node.sql(dialect=DIALECT)
