"""Turn SQL statements into `Action`s: what each statement does, for the rules.

The reader tries its parts cheapest first:
- `fast`: the commonest simple shapes (DROP INDEX, CREATE INDEX, DROP COLUMN, ...) by regex,
  giving exactly what sqlglot's path would;
- `quick`: transaction control and settings (BEGIN, COMMIT, SET, RESET), without sqlglot;
- `trees` (and `alter`): sqlglot's postgres dialect, reading only the top of its tree;
- `commands` / `shapes`: a small tokenizer of our own for what sqlglot keeps as an opaque
  `exp.Command` (row level security, policies, VALIDATE CONSTRAINT, ... USING INDEX,
  ALTER TYPE ... ADD VALUE, REINDEX, VACUUM, ...) or fails on.
`split` cuts SQL text into statements. The public names are re-exported here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlglot import exp
from sqlglot.errors import ParseError

from bot.analysis.model import Action, ActionKind, Statement
from bot.analysis.parse.commands import classify_tokens
from bot.analysis.parse.fast import classify_fast
from bot.analysis.parse.nodes import parse
from bot.analysis.parse.quick import classify_quick
from bot.analysis.parse.split import (
    clean,
    code_only,
    head,
    keywords,
    leading_words,
    other,
    split_sql,
    split_sql_located,
    sql_comments,
)
from bot.analysis.parse.trees import classify_tree

__all__ = [
    "classify",
    "classify_full",
    "parse_statements",
    "split_sql",
    "split_sql_located",
    "sql_comments",
]


def classify(sql: str) -> tuple[list[Action], str | None]:
    """The actions of one SQL statement, and an error text if it was not understood."""
    return _classify(sql, fast=True)


def classify_full(sql: str) -> tuple[list[Action], str | None]:
    """As `classify`, without the regular-expression shortcuts of `fast` (to compare)."""
    return _classify(sql, fast=False)


def _classify(sql: str, *, fast: bool) -> tuple[list[Action], str | None]:
    text = clean(sql)
    if not text:
        return [Action(ActionKind.OTHER, detail="empty")], None
    if ";" in text and len(parts := split_sql(text)) > 1:
        return _classify_several(parts)
    if fast and (shortcut := classify_fast(text)) is not None:
        return shortcut, None
    words = leading_words(text)
    quick = classify_quick(text, words)
    if quick is not None:
        return quick, None
    if _routes_to_tokens(text, words):
        return classify_tokens(text, words, strict=False) or other(words), None
    try:
        trees = parse(text)
    except ParseError as error:
        return _after_parse_error(text, words, _describe(error))
    except Exception as error:  # sqlglot can fail in other ways on odd input
        return _after_parse_error(text, words, f"{type(error).__name__}: {error}")
    if any(isinstance(tree, exp.Condition | exp.Alias) for tree in trees):
        # sqlglot accepts a bare expression (`foo`, `foo bar`); PostgreSQL does not.
        return _after_parse_error(text, words, f"not a SQL statement: {keywords(words)}")
    actions: list[Action] = []
    for tree in trees:
        if tree is not None:
            found = classify_tree(tree, words)
            if found is None:  # an opaque Command: read its tokens
                found = classify_tokens(text, words, strict=False) or other(words)
            actions.extend(found)
    return actions or other(words), None


def _classify_several(parts: list[str]) -> tuple[list[Action], str | None]:
    """Several statements given as one (`op.execute("A; B")`): all their actions."""
    actions: list[Action] = []
    errors: list[str] = []
    for part in parts:
        part_actions, error = classify(part)
        actions.extend(part_actions)
        if error is not None:
            errors.append(error)
    return actions, "; ".join(errors) or None


def parse_statements(statements: Iterable[Statement]) -> list[Statement]:
    """Fill `actions` and `parse_error` of each statement in place; return them as a list."""
    result = list(statements)
    for statement in result:
        statement.actions, statement.parse_error = classify(statement.sql)
    return result


# Statements sqlglot always keeps as a Command (or fails on): go straight to the tokens.
_TOKEN_ROUTED = frozenset({"DO", "REINDEX", "VACUUM", "CLUSTER", "LOCK", "REFRESH"})
_TOKEN_ROUTED_PAIRS = frozenset(
    {
        ("CREATE", "POLICY"),
        ("DROP", "POLICY"),
        ("ALTER", "POLICY"),
        ("ALTER", "TYPE"),
        ("CREATE", "EXTENSION"),
        ("CREATE", "FUNCTION"),
        ("CREATE", "PROCEDURE"),
        ("CREATE", "TRIGGER"),
        ("ALTER", "DOMAIN"),
        ("CREATE", "DOMAIN"),
        ("DROP", "DOMAIN"),
        ("DROP", "TRIGGER"),
        ("DROP", "FUNCTION"),
        ("DROP", "PROCEDURE"),
        ("DROP", "ROUTINE"),
        ("DROP", "EXTENSION"),
    }
)
_ALTER_TABLE_COMMAND = re.compile(
    r"\b(?:ROW\s+LEVEL\s+SECURITY|VALIDATE\s+CONSTRAINT|USING\s+INDEX|(?:ATTACH|DETACH)\s+PARTITION)\b",
    re.I,
)


def _routes_to_tokens(text: str, words: list[str]) -> bool:
    if not words:
        return False
    if words[0] in _TOKEN_ROUTED or tuple(head(words)[:2]) in _TOKEN_ROUTED_PAIRS:
        return True
    # Searched again without comments and strings (rarely needed: only after a first hit),
    # so that a word in a comment does not take the statement away from sqlglot.
    return (
        words[:2] == ["ALTER", "TABLE"]
        and _ALTER_TABLE_COMMAND.search(text) is not None
        and _ALTER_TABLE_COMMAND.search(code_only(text)) is not None
    )


def _after_parse_error(text: str, words: list[str], error: str) -> tuple[list[Action], str | None]:
    actions = classify_tokens(text, words, strict=True)
    if actions is not None:
        return actions, None
    return other(words), error


def _describe(error: ParseError) -> str:
    """ParseError text without sqlglot's terminal colour codes."""
    if error.errors:
        first = error.errors[0]
        return f"{first.get('description')} (line {first.get('line')}, col {first.get('col')})"
    return re.sub(r"\x1b\[\d+m", "", str(error))
