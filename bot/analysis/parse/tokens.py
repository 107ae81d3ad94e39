"""A small SQL tokenizer of our own and a cursor over its tokens, for the statements sqlglot
cannot read (it keeps them as an opaque Command or fails on them)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(
    r"""(?P<skip>\s+|--[^\n]*|/\*.*?(?:\*/|\Z))
    |(?P<dollar>\$(?P<tag>[A-Za-z_]\w*|)\$.*?(?:\$(?P=tag)\$|\Z))
    |(?P<string>[Ee]'(?:[^'\\]|\\.|'')*'|'(?:[^']|'')*')
    |(?P<qident>"(?:[^"]|"")*")
    |(?P<word>[A-Za-z_][\w$]*)
    |(?P<other>\S)""",
    re.S | re.X,
)


@dataclass(frozen=True)
class Token:
    kind: str  # word | qident | string | dollar | other
    text: str  # words upper-cased; identifiers unquoted; strings without quotes
    raw: str
    start: int
    end: int


def tokenize(text: str) -> list[Token]:
    tokens = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup or "other"
        if kind == "skip":
            continue
        raw = match.group()
        value = raw
        if kind == "word":
            value = raw.upper()
        elif kind == "qident":
            value = raw[1:-1].replace('""', '"')
        elif kind == "string":
            body = raw[2:-1] if raw[0] in "Ee" else raw[1:-1]
            value = body.replace("''", "'")
        tokens.append(Token(kind, value, raw, match.start(), match.end()))
    return tokens


class Cursor:
    """A position in a token list, with the few reads the command shapes need."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.position = 0

    def peek(self, offset: int = 0) -> str:
        index = self.position + offset
        if index < len(self.tokens) and self.tokens[index].kind == "word":
            return self.tokens[index].text
        return ""

    def accept(self, *words: str) -> bool:
        """Consume `words` if they come next, all of them."""
        if all(self.peek(i) == word for i, word in enumerate(words)):
            self.position += len(words)
            return True
        return False

    def accept_raw(self, raw: str) -> bool:
        """Consume one punctuation token (`,`, `(`) if it comes next."""
        if self.position < len(self.tokens) and self.tokens[self.position].raw == raw:
            self.position += 1
            return True
        return False

    def skip_if_exists(self) -> bool:
        return self.accept("IF", "EXISTS") or self.accept("IF", "NOT", "EXISTS")

    def name(self) -> str | None:
        """A possibly qualified name (`a`, `"A".b`), folded."""
        parts: list[str] = []
        while self.position < len(self.tokens):
            token = self.tokens[self.position]
            if token.kind == "word":
                parts.append(token.raw.lower())
            elif token.kind == "qident":
                parts.append(token.text)
            else:
                break
            self.position += 1
            if self.position < len(self.tokens) and self.tokens[self.position].raw == ".":
                self.position += 1
            else:
                break
        return ".".join(parts) or None

    def names(self) -> tuple[str, ...]:
        """A comma-separated list of names (`a, s.b`), skipping `ONLY` and `*`."""
        names: list[str] = []
        while True:
            self.accept("ONLY")
            name = self.name()
            if name:
                names.append(name)
            if self.position < len(self.tokens) and self.tokens[self.position].raw == "*":
                self.position += 1
            if self.position < len(self.tokens) and self.tokens[self.position].raw == ",":
                self.position += 1
                continue
            return tuple(names)

    def words(self) -> list[str]:
        """The remaining words (keywords and unquoted names), upper-cased."""
        return [t.text for t in self.tokens[self.position :] if t.kind == "word"]


def skip_parenthesised(cursor: Cursor) -> list[str]:
    """Skip a `( ... )` option list if one comes next; return its words."""
    tokens = cursor.tokens
    if cursor.position >= len(tokens) or tokens[cursor.position].raw != "(":
        return []
    end = cursor.position
    while end < len(tokens) and tokens[end].raw != ")":
        end += 1
    words = [t.text for t in tokens[cursor.position : end] if t.kind == "word"]
    cursor.position = end + 1
    return words


def option_list(cursor: Cursor) -> dict[str, bool]:
    """A `(name [value], ...)` option list if one comes next (REINDEX, VACUUM): each option's
    name and whether it is on. As in PostgreSQL, an option without a value is on, and its
    own FALSE, OFF or 0 turns only that option off."""
    options: dict[str, bool] = {}
    if not cursor.accept_raw("("):
        return options
    option: list[Token] = []
    for token in cursor.tokens[cursor.position :]:
        cursor.position += 1
        if token.raw not in (",", ")"):
            option.append(token)
            continue
        if option:
            value = "".join(t.text for t in option[1:]).lower()
            options[option[0].text.upper()] = value not in _FALSE
        option = []
        if token.raw == ")":
            break
    return options


_FALSE = frozenset({"false", "off", "0"})
