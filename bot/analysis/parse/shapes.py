"""Command shapes read from tokens: ALTER TYPE, policies, REINDEX, VACUUM, CLUSTER, LOCK,
DROP, TRUNCATE, CREATE INDEX / TABLE (after a sqlglot failure), and opaque code blocks.

Conventions beyond model.py's comments:
- `if_exists` is also set for `IF NOT EXISTS` (CREATE INDEX/TABLE/EXTENSION).
- ALTER TYPE ... ADD VALUE: `name` is the type, `value` the new label.
- LOCK TABLE: `tables`/`table` as for TRUNCATE, `detail` the lock mode (e.g. ACCESS EXCLUSIVE).
- CLUSTER / REINDEX: `table` the table, `name` the index where one is named.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.analysis.model import Action, ActionKind
from bot.analysis.parse.split import drop_actions, head, other
from bot.analysis.parse.tokens import Cursor, option_list, skip_parenthesised
from bot.analysis.parse.trees import DROP_KINDS


def _alter_type_tokens(cursor: Cursor) -> list[Action]:
    cursor.accept("ALTER", "TYPE")
    name = cursor.name()
    if cursor.accept("ADD", "VALUE"):
        cursor.skip_if_exists()
        token = cursor.tokens[cursor.position] if cursor.position < len(cursor.tokens) else None
        label = token.text if token is not None and token.kind == "string" else None
        return [Action(ActionKind.ALTER_TYPE_ADD_VALUE, name=name, value=label)]
    if cursor.accept("RENAME", "VALUE"):
        labels = [t.text for t in cursor.tokens[cursor.position :] if t.kind == "string"]
        old, new = [*labels, None, None][:2]
        return [Action(ActionKind.RENAME_ENUM_VALUE, name=name, value=old, detail=new)]
    return [Action(ActionKind.OTHER, name=name, detail="ALTER TYPE")]


def _policy_tokens(cursor: Cursor) -> list[Action]:
    verb = cursor.peek()
    cursor.position += 2  # CREATE|DROP|ALTER POLICY
    if_exists = cursor.skip_if_exists()
    name = cursor.name()
    table = cursor.name() if cursor.accept("ON") else None
    kind = {"CREATE": ActionKind.CREATE_POLICY, "DROP": ActionKind.DROP_POLICY}.get(
        verb, ActionKind.ALTER_POLICY
    )
    cascade = "CASCADE" in cursor.words()
    return [Action(kind, table=table, name=name, if_exists=if_exists, cascade=cascade)]


def _create_extension_tokens(cursor: Cursor) -> list[Action]:
    cursor.accept("CREATE", "EXTENSION")
    if_exists = cursor.skip_if_exists()
    return [Action(ActionKind.CREATE_EXTENSION, name=cursor.name(), if_exists=if_exists)]


def _reindex_tokens(cursor: Cursor) -> list[Action]:
    cursor.accept("REINDEX")
    options = option_list(cursor)  # PostgreSQL 14: REINDEX (CONCURRENTLY) INDEX ix
    target = cursor.peek()
    cursor.position += 1
    concurrently = cursor.accept("CONCURRENTLY") or options.get("CONCURRENTLY", False)
    name = cursor.name()
    if target == "TABLE":
        return [Action(ActionKind.REINDEX, table=name, concurrently=concurrently)]
    return [Action(ActionKind.REINDEX, name=name, concurrently=concurrently, detail=target)]


def _vacuum_tokens(cursor: Cursor) -> list[Action]:
    cursor.accept("VACUUM")
    full = option_list(cursor).get("FULL", False)
    while cursor.peek() in {"FULL", "FREEZE", "VERBOSE", "ANALYZE", "ANALYSE"}:
        full = full or cursor.peek() == "FULL"
        cursor.position += 1
    tables = cursor.names()
    kind = ActionKind.VACUUM_FULL if full else ActionKind.VACUUM
    return [Action(kind, table=tables[0] if tables else None, tables=tables)]


def _cluster_tokens(cursor: Cursor) -> list[Action]:
    cursor.accept("CLUSTER")
    skip_parenthesised(cursor)
    cursor.accept("VERBOSE")
    table = cursor.name()
    index = cursor.name() if cursor.accept("USING") else None
    return [Action(ActionKind.CLUSTER, table=table, name=index)]


def _lock_tokens(cursor: Cursor) -> list[Action]:
    cursor.accept("LOCK")
    cursor.accept("TABLE")
    tables = cursor.names()
    words = cursor.words()
    mode = "ACCESS EXCLUSIVE"  # PostgreSQL's default
    if words[:1] == ["IN"] and "MODE" in words:
        mode = " ".join(words[1 : words.index("MODE")])
    first = tables[0] if tables else None
    return [Action(ActionKind.LOCK_TABLE, table=first, tables=tables, detail=mode)]


def _drop_tokens(cursor: Cursor) -> list[Action] | None:
    cursor.accept("DROP")
    materialized = cursor.accept("MATERIALIZED")
    target = cursor.peek()
    if target in _DROP_ROUTINES:
        return _drop_routine_tokens(cursor, target)
    if target == "TRIGGER":
        return _drop_trigger_tokens(cursor)
    kind = DROP_KINDS.get(target) or _DROP_TOKEN_KINDS.get(target)
    if kind is None or (materialized and kind is not ActionKind.DROP_VIEW):
        return None
    cursor.position += 1
    concurrently = cursor.accept("CONCURRENTLY")
    if_exists = cursor.skip_if_exists()
    names = cursor.names()
    cascade = cursor.accept("CASCADE")
    return drop_actions(
        kind,
        names,
        if_exists=if_exists,
        cascade=cascade,
        concurrently=concurrently,
        detail="MATERIALIZED" if materialized else _DROP_DETAILS.get(target),
    )


# A domain is a type: drop-type judges it (its `detail` says DOMAIN).
_DROP_TOKEN_KINDS = {"EXTENSION": ActionKind.DROP_EXTENSION, "DOMAIN": ActionKind.DROP_TYPE}
_DROP_DETAILS = {"DOMAIN": "DOMAIN"}
_DROP_ROUTINES = frozenset({"FUNCTION", "PROCEDURE", "ROUTINE"})


def _drop_routine_tokens(cursor: Cursor, target: str) -> list[Action]:
    """DROP FUNCTION [IF EXISTS] f(int), g [CASCADE]: one action per function."""
    cursor.position += 1
    if_exists = cursor.skip_if_exists()
    names: list[str | None] = []
    while (name := cursor.name()) is not None:
        names.append(name)
        skip_parenthesised(cursor)
        if not cursor.accept_raw(","):
            break
    cascade = "CASCADE" in cursor.words()
    return drop_actions(
        ActionKind.DROP_FUNCTION,
        names,
        if_exists=if_exists,
        cascade=cascade,
        concurrently=False,
        detail=target,
    )


def _drop_trigger_tokens(cursor: Cursor) -> list[Action]:
    cursor.accept("TRIGGER")
    if_exists = cursor.skip_if_exists()
    name = cursor.name()
    table = cursor.name() if cursor.accept("ON") else None
    cascade = cursor.accept("CASCADE")
    return [
        Action(
            ActionKind.DROP_TRIGGER, table=table, name=name, if_exists=if_exists, cascade=cascade
        )
    ]


def _refresh_tokens(cursor: Cursor) -> list[Action]:
    cursor.accept("REFRESH", "MATERIALIZED", "VIEW")
    concurrently = cursor.accept("CONCURRENTLY")
    name = cursor.name()
    return [Action(ActionKind.REFRESH_MATERIALIZED_VIEW, name=name, concurrently=concurrently)]


def _alter_domain_tokens(cursor: Cursor) -> list[Action]:
    cursor.accept("ALTER", "DOMAIN")
    name = cursor.name()
    rest = cursor.words()
    text = " ".join(rest)
    subcommand = next((sub for sub in _DOMAIN_SUBCOMMANDS if text.startswith(sub)), text[:20])
    if subcommand == "ADD":
        subcommand = "ADD CONSTRAINT"
    not_valid = rest[-2:] == ["NOT", "VALID"]
    return [Action(ActionKind.ALTER_DOMAIN, name=name, detail=subcommand, not_valid=not_valid)]


# ALTER DOMAIN's subcommands, longest first where one starts another
_DOMAIN_SUBCOMMANDS = (
    "SET NOT NULL",
    "DROP NOT NULL",
    "SET DEFAULT",
    "DROP DEFAULT",
    "DROP CONSTRAINT",
    "VALIDATE CONSTRAINT",
    "RENAME CONSTRAINT",
    "RENAME",
    "OWNER",
    "SET SCHEMA",
    "ADD",
)


def _truncate_tokens(cursor: Cursor) -> list[Action]:
    cursor.accept("TRUNCATE")
    cursor.accept("TABLE")
    tables = cursor.names()
    cascade = "CASCADE" in cursor.words()
    first = tables[0] if tables else None
    return [Action(ActionKind.TRUNCATE, table=first, tables=tables, cascade=cascade)]


def create_index_tokens(cursor: Cursor) -> list[Action] | None:
    cursor.accept("CREATE")
    unique = cursor.accept("UNIQUE")
    if not cursor.accept("INDEX"):
        return None
    concurrently = cursor.accept("CONCURRENTLY")
    if_exists = cursor.skip_if_exists()
    name = None if cursor.peek() == "ON" else cursor.name()
    if not cursor.accept("ON"):
        return None
    cursor.accept("ONLY")
    return [
        Action(
            ActionKind.CREATE_INDEX,
            table=cursor.name(),
            name=name,
            unique=unique,
            concurrently=concurrently,
            if_exists=if_exists,
        )
    ]


def create_table_tokens(cursor: Cursor) -> list[Action] | None:
    """CREATE TABLE, or CREATE [MATERIALIZED] VIEW (e.g. `... WITH NO DATA`)."""
    cursor.accept("CREATE")
    cursor.accept("OR", "REPLACE")
    while cursor.peek() in {"GLOBAL", "LOCAL", "TEMP", "TEMPORARY", "UNLOGGED", "RECURSIVE"}:
        cursor.position += 1
    if cursor.accept("MATERIALIZED", "VIEW") or cursor.accept("VIEW"):
        if_exists = cursor.skip_if_exists()
        return [Action(ActionKind.CREATE_VIEW, name=cursor.name(), if_exists=if_exists)]
    if not cursor.accept("TABLE"):
        return None
    if_exists = cursor.skip_if_exists()
    return [Action(ActionKind.CREATE_TABLE, table=cursor.name(), if_exists=if_exists)]


def _create_domain_tokens(cursor: Cursor) -> list[Action]:
    """CREATE DOMAIN: a type (as DROP DOMAIN is), so that dropping it later in the same
    stream drops nothing that existed before."""
    cursor.accept("CREATE", "DOMAIN")
    return [Action(ActionKind.CREATE_TYPE, name=cursor.name(), detail="DOMAIN")]


def _comment_tokens(cursor: Cursor) -> list[Action]:
    return [Action(ActionKind.COMMENT)]


def _opaque_tokens(cursor: Cursor) -> list[Action]:
    """Code blocks and functions: nothing the rules look into."""
    return other(head(cursor.words()[:6]))


TOKEN_SHAPES: dict[tuple[str, ...], Callable[[Cursor], list[Action] | None]] = {
    ("ALTER", "TYPE"): _alter_type_tokens,
    ("CREATE", "POLICY"): _policy_tokens,
    ("DROP", "POLICY"): _policy_tokens,
    ("ALTER", "POLICY"): _policy_tokens,
    ("CREATE", "EXTENSION"): _create_extension_tokens,
    ("REINDEX",): _reindex_tokens,
    ("VACUUM",): _vacuum_tokens,
    ("CLUSTER",): _cluster_tokens,
    ("LOCK",): _lock_tokens,
    ("REFRESH",): _refresh_tokens,
    ("ALTER", "DOMAIN"): _alter_domain_tokens,
    ("CREATE", "DOMAIN"): _create_domain_tokens,
    ("DROP",): _drop_tokens,
    ("TRUNCATE",): _truncate_tokens,
    ("COMMENT",): _comment_tokens,
    ("DO",): _opaque_tokens,
    ("CREATE", "FUNCTION"): _opaque_tokens,
    ("CREATE", "PROCEDURE"): _opaque_tokens,
    ("CREATE", "TRIGGER"): _opaque_tokens,
}
