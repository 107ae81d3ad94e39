"""The most common simple shapes, read with one regular expression each instead of sqlglot.

Parsing with sqlglot is most of a statement's classification time. Statements that are
exactly one of these shapes, with plain (unquoted) names, give the same actions as the
sqlglot path (tests/analysis/test_parse_fast.py compares the two); anything else, even a
quoted name or an extra clause, returns None and takes the full path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from sqlglot import exp
from sqlglot.errors import SqlglotError

from bot.analysis.model import Action, ActionKind
from bot.analysis.parse.alter import SERIAL_TYPES
from bot.analysis.parse.nodes import DIALECT, type_sql

_ID = r"[A-Za-z_][A-Za-z0-9_$]*"
_QNAME = rf"{_ID}(?:\.{_ID})?"

# Words that would make a "name" in these patterns really a keyword of another shape
# (`CREATE INDEX CONCURRENTLY ON t`, `DROP INDEX IF EXISTS`, `ALTER TABLE ONLY t`).
_KEYWORDS = frozenset(
    {"CONCURRENTLY", "IF", "EXISTS", "ON", "ONLY", "COLUMN", "CONSTRAINT", "TO", "INDEX"}
)

_Build = Callable[[re.Match[str]], list[Action] | None]
_SHAPES: list[tuple[re.Pattern[str], _Build]] = []


def _shape(pattern: str) -> Callable[[_Build], _Build]:
    def register(build: _Build) -> _Build:
        _SHAPES.append((re.compile(pattern, re.IGNORECASE | re.ASCII), build))
        return build

    return register


def classify_fast(text: str) -> list[Action] | None:
    """The actions of `text` when it is one of the simple shapes, else None."""
    for pattern, build in _SHAPES:
        match = pattern.fullmatch(text)
        if match is not None:
            names = [v for k, v in match.groupdict().items() if k in _NAME_GROUPS and v]
            parts = (part for name in names for part in _PARTS.split(name))
            if any(part.upper() in _KEYWORDS for part in parts):
                return None
            return build(match)  # None: not as simple as it looked
    return None


_NAME_GROUPS = frozenset({"name", "table", "column", "new", "columns"})

# A column type made only of these words, with an optional (n[, m]) and [] suffixes: what
# sqlglot reads as just the type (a longer clause such as PRIMARY KEY is never taken in).
_TYPE_WORDS = frozenset(
    [
        "INT",
        "INTEGER",
        "INT2",
        "INT4",
        "INT8",
        "BIGINT",
        "SMALLINT",
        "SERIAL",
        "BIGSERIAL",
        "SMALLSERIAL",
        "TEXT",
        "VARCHAR",
        "CHARACTER",
        "VARYING",
        "CHAR",
        "BOOLEAN",
        "BOOL",
        "TIMESTAMP",
        "TIMESTAMPTZ",
        "WITH",
        "WITHOUT",
        "TIME",
        "ZONE",
        "DATE",
        "NUMERIC",
        "DECIMAL",
        "UUID",
        "JSON",
        "JSONB",
        "BYTEA",
        "DOUBLE",
        "PRECISION",
        "REAL",
        "FLOAT",
        "INTERVAL",
        "INET",
    ]
)
_TYPE = (
    r"[A-Za-z][A-Za-z0-9]*(?:\s+[A-Za-z][A-Za-z0-9]*)*?"  # one or more words
    r"(?:\s*\(\s*\d+(?:\s*,\s*\d+)?\s*\))?(?:\[\])*"  # (n[, m]), then [] for arrays
)


@lru_cache(maxsize=1024)
def _column_type(raw: str) -> tuple[str, bool] | None:
    """(type text as the full path writes it, is a serial type) for a plain type, or None."""
    words = re.findall(r"[A-Za-z][A-Za-z0-9]*", raw)
    if not words or any(word.upper() not in _TYPE_WORDS for word in words):
        return None
    try:
        node = exp.DataType.build(raw, dialect=DIALECT)
    except (SqlglotError, ValueError):
        return None
    return type_sql(node), node.this in SERIAL_TYPES


_PARTS = re.compile(r"[.,\s]+")


def _name(match: re.Match[str], group: str) -> str:
    return match.group(group).lower()


@_shape(rf"DROP\s+INDEX\s+(?P<cc>CONCURRENTLY\s+)?(?P<ie>IF\s+EXISTS\s+)?(?P<name>{_QNAME})")
def _drop_index(match: re.Match[str]) -> list[Action]:
    return [
        Action(
            ActionKind.DROP_INDEX,
            name=_name(match, "name"),
            concurrently=match.group("cc") is not None,
            if_exists=match.group("ie") is not None,
        )
    ]


@_shape(rf"ALTER\s+TABLE\s+(?P<table>{_QNAME})\s+DROP\s+COLUMN\s+(?P<column>{_ID})")
def _drop_column(match: re.Match[str]) -> list[Action]:
    return [
        Action(ActionKind.DROP_COLUMN, table=_name(match, "table"), column=_name(match, "column"))
    ]


@_shape(
    rf"ALTER\s+TABLE\s+(?P<table>{_QNAME})\s+ADD\s+(?:COLUMN\s+)?(?P<column>{_ID})\s+"
    rf"(?P<type>{_TYPE})(?:\s+(?P<nn>NOT\s+)?NULL)?"
)
def _add_column(match: re.Match[str]) -> list[Action] | None:
    known = _column_type(match.group("type"))
    if known is None:
        return None
    data_type, serial = known
    return [
        Action(
            ActionKind.ADD_COLUMN,
            table=_name(match, "table"),
            column=_name(match, "column"),
            data_type=data_type,
            not_null=match.group("nn") is not None,
            default_volatile=serial,
        )
    ]


@_shape(
    rf"ALTER\s+TABLE\s+(?P<table>{_QNAME})\s+ALTER\s+COLUMN\s+(?P<column>{_ID})\s+"
    rf"(?:SET\s+DATA\s+)?TYPE\s+(?P<type>{_TYPE})"
)
def _alter_column_type(match: re.Match[str]) -> list[Action] | None:
    known = _column_type(match.group("type"))
    if known is None:
        return None
    return [
        Action(
            ActionKind.ALTER_COLUMN_TYPE,
            table=_name(match, "table"),
            column=_name(match, "column"),
            data_type=known[0],
        )
    ]


_NULLABILITY = {"SET": ActionKind.SET_NOT_NULL, "DROP": ActionKind.DROP_NOT_NULL}


@_shape(
    rf"ALTER\s+TABLE\s+(?P<table>{_QNAME})\s+ALTER\s+COLUMN\s+(?P<column>{_ID})"
    rf"\s+(?P<verb>SET|DROP)\s+NOT\s+NULL"
)
def _nullability(match: re.Match[str]) -> list[Action]:
    kind = _NULLABILITY[match.group("verb").upper()]
    return [Action(kind, table=_name(match, "table"), column=_name(match, "column"))]


@_shape(
    rf"ALTER\s+TABLE\s+(?P<table>{_QNAME})\s+RENAME\s+(?:COLUMN\s+)?(?P<column>{_ID})"
    rf"\s+TO\s+(?P<new>{_ID})"
)
def _rename_column(match: re.Match[str]) -> list[Action]:
    return [
        Action(
            ActionKind.RENAME_COLUMN,
            table=_name(match, "table"),
            column=_name(match, "column"),
            name=_name(match, "new"),
        )
    ]


@_shape(
    rf"CREATE\s+(?P<unique>UNIQUE\s+)?INDEX\s+(?P<cc>CONCURRENTLY\s+)?(?P<name>{_ID})\s+ON\s+"
    rf"(?P<table>{_QNAME})\s*\(\s*(?P<columns>{_ID}(?:\s*,\s*{_ID})*)\s*\)"
)
def _create_index(match: re.Match[str]) -> list[Action]:
    columns = tuple(c.strip().lower() for c in match.group("columns").split(","))
    return [
        Action(
            ActionKind.CREATE_INDEX,
            table=_name(match, "table"),
            name=_name(match, "name"),
            columns=columns,
            unique=match.group("unique") is not None,
            concurrently=match.group("cc") is not None,
        )
    ]
