"""Splitting SQL text into statements, and the few text helpers every reader shares.

Quotes, dollar-quoting and comments are respected; nothing here knows SQL grammar
beyond where a statement ends and which words it starts with.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from bot.analysis.model import Action, ActionKind


def split_sql(text: str) -> list[str]:
    """Split SQL text into statements, respecting quotes, dollar-quoting and comments.

    Leading comments of a statement are dropped, as are empty statements and pure comments.
    """
    statements: list[str] = []
    start = 0
    for end in _statement_ends(text):
        _add_statement(statements, text[start : end.start()])
        start = end.end()
    _add_statement(statements, text[start:])
    return statements


def split_sql_located(text: str) -> list[tuple[int, str]]:
    """As `split_sql`, each statement with the line (from 1) its first word is on."""
    located: list[tuple[int, str]] = []
    start = 0
    for end in _statement_ends(text):
        _add_located(located, text, start, end.start())
        start = end.end()
    _add_located(located, text, start, len(text))
    return located


def _statement_ends(text: str) -> Iterator[re.Match[str]]:
    """The semicolons that end a statement: none in a quote, a comment, a dollar-quoted body,
    or the `BEGIN ATOMIC ... END` body of a SQL-standard function or procedure.

    The body is found as psql finds it: in CREATE [OR REPLACE] FUNCTION / PROCEDURE, a
    BEGIN outside parentheses opens a block, a CASE inside a block opens another (it ends
    with END too), and END closes one."""
    lead: list[str] = []  # the statement's first words, up to the routine's keyword
    routine = False
    depth = 0  # parentheses
    blocks = 0
    for match in _SPLIT_TOKEN.finditer(text):
        kind = match.lastgroup
        if kind == "word":
            if routine:
                if depth == 0:
                    word = match.group().upper()
                    if word == "BEGIN" or (word == "CASE" and blocks):
                        blocks += 1
                    elif word == "END" and blocks:
                        blocks -= 1
            elif len(lead) < 4:
                lead.append(match.group().upper())
                routine = tuple(lead) in _ROUTINE_LEADS
        elif kind == "semicolon":
            if blocks == 0:
                yield match
                lead, routine, depth = [], False, 0
        elif kind == "paren" and routine:
            depth = depth + 1 if match.group() == "(" else max(depth - 1, 0)


_ROUTINE_LEADS = frozenset(
    (*lead, kind)
    for lead in (("CREATE",), ("CREATE", "OR", "REPLACE"))
    for kind in ("FUNCTION", "PROCEDURE")
)


def code_only(text: str) -> str:
    """`text` with its comments, string literals, dollar-quoted bodies and quoted names each
    blanked to a space: what is left are keywords, plain names and punctuation."""
    return _SPLIT_TOKEN.sub(_keep_code, text)


def _keep_code(match: re.Match[str]) -> str:
    return match.group() if match.lastgroup in _CODE_GROUPS else " "


_CODE_GROUPS = frozenset({"word", "paren", "semicolon"})


def sql_comments(text: str) -> dict[int, str]:
    """Line -> text of the `--` comment on it (without the dashes); none inside strings."""
    return {
        text.count("\n", 0, match.start()) + 1: match.group()[2:].strip()
        for match in _SPLIT_TOKEN.finditer(text)
        if match.group().startswith("--")
    }


_SPLIT_TOKEN = re.compile(
    r"""--[^\n]*|/\*.*?(?:\*/|\Z)|\$(?P<tag>[A-Za-z_]\w*|)\$.*?(?:\$(?P=tag)\$|\Z)
    |[Ee]'(?:[^'\\]|\\.|'')*(?:'|\Z)|'(?:[^']|'')*(?:'|\Z)|"(?:[^"]|"")*(?:"|\Z)
    |(?P<semicolon>;)|(?P<paren>[()])|(?P<word>[A-Za-z_][\w$]*)""",
    re.S | re.X,
)
_LEADING_NOISE = re.compile(r"(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?(?:\*/|\Z))*", re.S)
_TRAILING_NOISE = re.compile(r"[\s;]+\Z")
_WORD = re.compile(r"[A-Za-z_]\w*")


def _add_statement(statements: list[str], piece: str) -> None:
    cleaned = clean(piece)
    if cleaned:
        statements.append(cleaned)


def _add_located(located: list[tuple[int, str]], text: str, start: int, end: int) -> None:
    piece = text[start:end]
    cleaned = clean(piece)
    if cleaned:
        noise = _LEADING_NOISE.match(piece)
        begins = start + (noise.end() if noise else 0)
        located.append((text.count("\n", 0, begins) + 1, cleaned))


def clean(sql: str) -> str:
    """The statement without leading comments, surrounding blanks and trailing semicolons."""
    start = _LEADING_NOISE.match(sql)
    text = sql[start.end() :] if start else sql
    return _TRAILING_NOISE.sub("", text)


def leading_words(text: str, limit: int = 6) -> list[str]:
    """The first few words, upper-cased: enough to tell a statement's kind."""
    return [word.upper() for word in _WORD.findall(text, 0, 120)[:limit]]


def head(words: list[str]) -> list[str]:
    """The leading words without CREATE's `OR REPLACE`."""
    return [words[0], *words[3:]] if words[1:3] == ["OR", "REPLACE"] else words


def keywords(words: list[str]) -> str:
    """The leading keywords naming a statement's kind: "GRANT", "CREATE OR REPLACE VIEW"."""
    if not words:
        return "?"
    if words[0] in {"CREATE", "ALTER", "DROP", "COMMENT", "REFRESH", "SET"}:
        count = 4 if words[1:2] == ["OR"] else 2
        if words[1:2] in (["MATERIALIZED"], ["UNIQUE"], ["ON"]):
            count = 3
        return " ".join(words[:count])
    return words[0]


def other(words: list[str], detail: str | None = None) -> list[Action]:
    """A statement no rule knows about, named by its leading keywords."""
    return [Action(ActionKind.OTHER, detail=detail or keywords(words))]


def drop_actions(
    kind: ActionKind,
    names: Iterable[str | None],
    *,
    if_exists: bool,
    cascade: bool,
    concurrently: bool,
    detail: str | None = None,
) -> list[Action]:
    """One action per dropped object; a dropped table goes in `table`, anything else in `name`."""
    actions = []
    for name in names:
        action = Action(
            kind, if_exists=if_exists, cascade=cascade, concurrently=concurrently, detail=detail
        )
        if kind is ActionKind.DROP_TABLE:
            action.table = name
        else:
            action.name = name
        actions.append(action)
    return actions
