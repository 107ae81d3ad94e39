"""Objects a change drops and creates again: a redefinition, not a lasting loss.

A pre-scan of the whole stream, like `state.rebuilt_indexes` for indexes: the engine
hands each statement's share to `StreamState.recreating`. Also reads the names the parser
leaves out of CREATE FUNCTION / PROCEDURE and ALTER TYPE ... RENAME TO (classified OTHER),
for the stream state.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.analysis.keys import constraint_key, name_key
from bot.analysis.model import Action, ActionKind, Statement

# What a drop of each kind removes, as a `StreamState.created_objects` kind: a view (plain or
# materialized, CREATE VIEW covers both), a function or procedure, a table's constraint.
_RECREATABLE = {
    ActionKind.DROP_VIEW: "view",
    ActionKind.DROP_FUNCTION: "function",
    ActionKind.DROP_CONSTRAINT: "constraint",
}

# The parser leaves CREATE FUNCTION / PROCEDURE and ALTER TYPE ... RENAME TO as OTHER
# without the name they create: read it from the statement (rare statements, never the
# per-statement hot path).
_NAME = r'(?:"[^"]+"|[a-z_][a-z0-9_$]*)(?:\s*\.\s*(?:"[^"]+"|[a-z_][a-z0-9_$]*))?'
_CREATE_ROUTINE = re.compile(
    rf"\s*create\s+(?:or\s+replace\s+)?(?:function|procedure)\s+({_NAME})", re.IGNORECASE
)
_RENAME_TYPE = re.compile(rf"\s*alter\s+type\s+({_NAME})\s+rename\s+to\s+({_NAME})", re.I)


def _identifier(text: str) -> str:
    """A name as the parser writes it: unquoted parts lower-cased, quoted ones kept."""
    parts = re.findall(r'"[^"]+"|[^.\s]+', text)
    return ".".join(part if part.startswith('"') else part.lower() for part in parts)


def created_routine(action: Action, sql: str) -> str | None:
    """The function or procedure a CREATE [OR REPLACE] FUNCTION / PROCEDURE creates."""
    if action.kind is not ActionKind.OTHER or action.detail not in _ROUTINE_DETAILS:
        return None
    match = _CREATE_ROUTINE.match(sql)
    return _identifier(match.group(1)) if match else None


_ROUTINE_DETAILS = frozenset({"CREATE FUNCTION", "CREATE PROCEDURE"})


def renamed_type(action: Action, sql: str) -> tuple[str, str] | None:
    """(old, new) keys of ALTER TYPE old RENAME TO new; the new name is in old's schema."""
    if action.kind is not ActionKind.OTHER or action.detail != "ALTER TYPE":
        return None
    match = _RENAME_TYPE.match(sql)
    if match is None:
        return None
    old = name_key(_identifier(match.group(1)))
    schema = old.rsplit(".", 1)[0] + "." if "." in old else ""
    return old, name_key(schema + _identifier(match.group(2)).rsplit(".", 1)[-1])


def _object_key(action: Action, sql: str) -> tuple[str, str] | None:
    """(kind, key) of the view, function or constraint `action` creates, or None."""
    if action.kind is ActionKind.CREATE_VIEW and action.name:
        return "view", name_key(action.name)
    if action.kind is ActionKind.ADD_CONSTRAINT and action.table and action.name:
        return "constraint", constraint_key(action.table, action.name)
    routine = created_routine(action, sql)
    return ("function", name_key(routine)) if routine else None


def _dropped_key(action: Action) -> tuple[str, str] | None:
    kind = _RECREATABLE.get(action.kind)
    if kind is None or not action.name or action.cascade:  # CASCADE's victims stay gone
        return None
    if kind == "constraint":
        return (kind, constraint_key(action.table, action.name)) if action.table else None
    return kind, name_key(action.name)


def recreated_objects(statements: Sequence[Statement]) -> dict[int, frozenset[tuple[str, str]]]:
    """Position of a statement dropping views, functions or constraints -> (kind, key) of
    those the same statement or a later one creates again under the same name: a
    redefinition (DROP VIEW v; CREATE VIEW v ...; a primary-key swap DROP CONSTRAINT o_pkey,
    ADD CONSTRAINT o_pkey ... USING INDEX), not a lasting loss. A CASCADE drop is never one:
    what it dropped along is not created again."""
    recreated: dict[int, frozenset[tuple[str, str]]] = {}
    created_later: set[tuple[str, str]] = set()
    for position in range(len(statements) - 1, -1, -1):
        stmt = statements[position]
        for action in stmt.actions:
            key = _object_key(action, stmt.sql)
            if key is not None:
                created_later.add(key)
        dropped = {key for action in stmt.actions if (key := _dropped_key(action)) is not None}
        if dropped & created_later:
            recreated[position] = frozenset(dropped & created_later)
    return recreated
