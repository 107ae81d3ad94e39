"""The most common simple shapes, read with one regular expression each instead of sqlglot.

Parsing with sqlglot is most of a statement's classification time. Statements that are
exactly one of these shapes, with plain (unquoted) names, give the same actions as the
sqlglot path (tests/analysis/test_parse_fast.py compares the two); anything else, even a
quoted name or an extra clause, returns None and takes the full path.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bot.analysis.model import Action, ActionKind

_ID = r"[A-Za-z_][A-Za-z0-9_$]*"
_QNAME = rf"{_ID}(?:\.{_ID})?"

# Words that would make a "name" in these patterns really a keyword of another shape
# (`CREATE INDEX CONCURRENTLY ON t`, `DROP INDEX IF EXISTS`, `ALTER TABLE ONLY t`).
_KEYWORDS = frozenset(
    {"CONCURRENTLY", "IF", "EXISTS", "ON", "ONLY", "COLUMN", "CONSTRAINT", "TO", "INDEX"}
)

_Build = Callable[[re.Match[str]], list[Action]]
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
            return build(match)
    return None


_NAME_GROUPS = frozenset({"name", "table", "column", "new", "columns"})
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
