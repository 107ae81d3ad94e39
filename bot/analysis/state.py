"""What a stream of statements has done so far, as the rules need to know it.

The engine walks the statements in order; each rule sees a statement together
with the state *before* it (`enter` only marks a CREATE TABLE's own table as new,
for its inline constraints), then `StreamState.apply` records the statement.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bot.analysis.durations import parse_duration_ms
from bot.analysis.keys import constraint_key, index_key
from bot.analysis.keys import name_key as name_key  # the rules import it from here
from bot.analysis.model import Action, ActionKind, Statement
from bot.analysis.recreated import created_routine, renamed_type

TIMEOUT_SETTINGS = ("lock_timeout", "statement_timeout")
# Details of the OTHER actions that end the transaction (ROLLBACK TO SAVEPOINT does not)
ROLLBACKS = frozenset({"ROLLBACK", "ROLLBACK AND CHAIN"})

# Only run on the SQL of CHECK constraints (rare), never in the per-statement hot path.
_NOT_NULL_CHECK = re.compile(
    r'check\s*\(\s*\(?\s*"?([a-z_][a-z0-9_$]*)"?\s+is\s+not\s+null\s*\)?\s*\)', re.IGNORECASE
)


# Statements that neither drop nor create anything between a DROP INDEX and its re-create.
_TRANSPARENT = frozenset({ActionKind.SET, ActionKind.BEGIN, ActionKind.COMMIT})


def rebuilt_indexes(statements: Sequence[Statement]) -> dict[int, dict[str, str | None]]:
    """Position of a DROP INDEX -> {index key: table} for the indexes the next statement
    (past SET / BEGIN / COMMIT, e.g. an autocommit block's) creates again under the same
    name: a rebuild, e.g. retrying a failed CREATE INDEX CONCURRENTLY."""
    rebuilds: dict[int, dict[str, str | None]] = {}
    following: Statement | None = None
    for position in range(len(statements) - 1, -1, -1):
        stmt = statements[position]
        kinds = {action.kind for action in stmt.actions}
        if ActionKind.DROP_INDEX in kinds and following is not None:
            created = {
                index_key(action.name, action.table): action.table
                for action in following.actions
                if action.kind is ActionKind.CREATE_INDEX and action.name
            }
            dropped = {
                index_key(action.name)
                for action in stmt.actions
                if action.kind is ActionKind.DROP_INDEX and action.name
            }
            again = {key: table for key, table in created.items() if key in dropped}
            if again:
                rebuilds[position] = again
        if kinds and not kinds <= _TRANSPARENT:
            following = stmt
    return rebuilds


def not_null_check_column(action: Action, sql: str) -> str | None:
    """The column of a `CHECK (col IS NOT NULL)` constraint, or None for any other check."""
    match = _NOT_NULL_CHECK.search(action.detail or sql)
    return match.group(1) if match is not None else None


@dataclass(frozen=True)
class Timeout:
    """A timeout setting in effect: `ms` is None when the value could not be read."""

    text: str
    ms: float | None

    @property
    def unlimited(self) -> bool:
        return self.ms == 0


@dataclass
class StreamState:
    """Tables, indexes, settings and transaction state after the statements seen so far."""

    created_tables: set[str] = field(default_factory=set)
    added_columns: set[tuple[str, str]] = field(default_factory=set)  # (table, column)
    created_indexes: dict[str, str | None] = field(default_factory=dict)  # index -> table
    created_policies: set[tuple[str, str]] = field(default_factory=set)  # (table, policy)
    # Dropped earlier in this stream and not created again since: gone at this point
    dropped_tables: set[str] = field(default_factory=set)
    dropped_columns: set[tuple[str, str]] = field(default_factory=set)  # (table, column)
    dropped_indexes: set[str] = field(default_factory=set)
    # (table, constraint) -> (column, validated) for CHECK (column IS NOT NULL)
    not_null_checks: dict[tuple[str, str], tuple[str, bool]] = field(default_factory=dict)
    in_transaction: bool = False
    # (table, constraint) added NOT VALID since the current transaction began
    not_valid_in_transaction: set[tuple[str, str]] = field(default_factory=set)
    last_commit: Statement | None = None  # the latest COMMIT, while no BEGIN has followed it
    # (kind, name) of types, views, sequences, extensions, functions and constraints
    # (name: `constraint_key`) created earlier in this stream
    created_objects: set[tuple[str, str]] = field(default_factory=set)
    # Types renamed in this stream: new key -> old key (the enum swap renames the old type away)
    renamed_types: dict[str, str] = field(default_factory=dict)
    session_settings: dict[str, Timeout] = field(default_factory=dict)
    # SET LOCAL overrides until COMMIT; None = SET LOCAL ... TO DEFAULT
    local_settings: dict[str, Timeout | None] = field(default_factory=dict)
    # Indexes the current statement drops and the next one creates again: index key -> table
    rebuilding: dict[str, str | None] = field(default_factory=dict)
    # Views, functions and constraints the current statement drops and it or a later one
    # creates again (`recreated_objects`): (kind, key)
    recreating: frozenset[tuple[str, str]] = frozenset()
    # (rule, revision) -> offending statements, for rules that report once per revision
    per_revision: dict[tuple[str, str | None], int] = field(default_factory=dict)

    # --- questions the rules ask -------------------------------------------------

    def is_existing_table(self, table: str | None) -> bool:
        """True unless the table was created earlier in this stream."""
        return table is None or name_key(table) not in self.created_tables

    def is_new_column(self, table: str | None, column: str | None) -> bool:
        """The column was added earlier in this stream (to a new or an existing table)."""
        if table is None or column is None:
            return False
        key = name_key(table)
        return key in self.created_tables or (key, column) in self.added_columns

    def is_dropped_table(self, table: str | None) -> bool:
        """Dropped earlier in this stream and not created again: nothing left to destroy."""
        return table is not None and name_key(table) in self.dropped_tables

    def is_dropped_column(self, table: str | None, column: str | None) -> bool:
        if table is None or column is None:
            return False
        key = name_key(table)
        return key in self.dropped_tables or (key, column) in self.dropped_columns

    def is_dropped_index(self, name: str | None) -> bool:
        return name is not None and name_key(name) in self.dropped_indexes

    def is_new_index(self, name: str | None) -> bool:
        return name is not None and name_key(name) in self.created_indexes

    def index_table(self, name: str | None) -> str | None:
        return None if name is None else self.created_indexes.get(name_key(name))

    def is_rebuilt_index(self, name: str | None) -> bool:
        """The current statement drops the index and the next one creates it again under
        the same name, on the same table when the dropped index's table is known."""
        if name is None or name_key(name) not in self.rebuilding:
            return False
        known = self.index_table(name)
        again = self.rebuilding[name_key(name)]
        return known is None or again is None or name_key(known) == name_key(again)

    def is_new_policy(self, table: str | None, name: str | None) -> bool:
        if table is None or name is None:
            return False
        return (name_key(table), name) in self.created_policies

    def has_validated_not_null_check(self, table: str | None, column: str | None) -> bool:
        if table is None or column is None:
            return False
        key = name_key(table)
        return any(
            constraint_table == key and checked == column and validated
            for (constraint_table, _), (checked, validated) in self.not_null_checks.items()
        )

    def is_new_object(self, kind: str, name: str | None) -> bool:
        """Created earlier in this stream; `kind` as in `_CREATED_OBJECTS`: type, view, ..."""
        return name is not None and (kind, name_key(name)) in self.created_objects

    def is_recreated(self, kind: str, name: str | None, table: str | None = None) -> bool:
        """The current statement drops it and it or a later one creates it again; `kind` is
        view, function or constraint (of `table`)."""
        if name is None:
            return False
        if kind == "constraint":
            return table is not None and (kind, constraint_key(table, name)) in self.recreating
        return (kind, name_key(name)) in self.recreating

    def is_new_constraint(self, table: str | None, name: str | None) -> bool:
        """Added earlier in this stream (on a new table or an existing one)."""
        if table is None or name is None:
            return False
        return ("constraint", constraint_key(table, name)) in self.created_objects

    def is_swapped_type(self, name: str | None) -> bool:
        """Renamed away in this stream, and a type of its old name created since: the enum
        swap (RENAME TO x_old; CREATE TYPE x ...; convert the columns; DROP TYPE x_old)."""
        old = None if name is None else self.renamed_types.get(name_key(name))
        return old is not None and ("type", old) in self.created_objects

    def timeout(self, setting: str) -> Timeout | None:
        """The value in effect, or None when none is (never set, RESET or DEFAULT)."""
        if setting in self.local_settings:
            return self.local_settings[setting]
        return self.session_settings.get(setting)

    # --- recording a statement ---------------------------------------------------

    def enter(self, stmt: Statement) -> None:
        """Before the rules see `stmt`: a CREATE TABLE's own constraints are on a new table."""
        first = stmt.actions[0] if stmt.actions else None
        if first is not None and first.kind is ActionKind.CREATE_TABLE:
            self._create_table(first, stmt)

    def apply(self, stmt: Statement) -> None:
        for action in stmt.actions:
            handler = _APPLY.get(action.kind)
            if handler is not None:
                handler(self, action, stmt)

    def _create_table(self, action: Action, stmt: Statement) -> None:
        if action.table is not None:
            self.created_tables.add(name_key(action.table))
            self.dropped_tables.discard(name_key(action.table))

    def _drop_table(self, action: Action, stmt: Statement) -> None:
        for table in action.tables or ((action.table,) if action.table else ()):
            self.created_tables.discard(name_key(table))
            self.dropped_tables.add(name_key(table))

    def _rename_table(self, action: Action, stmt: Statement) -> None:
        if action.table and action.name and not self.is_existing_table(action.table):
            self.created_tables.add(name_key(action.name))

    def _add_column(self, action: Action, stmt: Statement) -> None:
        if action.table and action.column:
            self.added_columns.add((name_key(action.table), action.column))
            self.dropped_columns.discard((name_key(action.table), action.column))

    def _drop_column(self, action: Action, stmt: Statement) -> None:
        if action.table and action.column:
            self.dropped_columns.add((name_key(action.table), action.column))

    def _rename_column(self, action: Action, stmt: Statement) -> None:
        if action.name and self.is_new_column(action.table, action.column):
            assert action.table is not None
            self.added_columns.add((name_key(action.table), action.name))

    def _create_index(self, action: Action, stmt: Statement) -> None:
        if action.name:
            key = index_key(action.name, action.table)
            self.created_indexes[key] = action.table
            self.dropped_indexes.discard(key)

    def _drop_index(self, action: Action, stmt: Statement) -> None:
        if action.name:
            self.created_indexes.pop(name_key(action.name), None)
            self.dropped_indexes.add(name_key(action.name))

    def _create_policy(self, action: Action, stmt: Statement) -> None:
        if action.table and action.name:
            self.created_policies.add((name_key(action.table), action.name))

    def _add_constraint(self, action: Action, stmt: Statement) -> None:
        if action.table and action.name:
            self.created_objects.add(("constraint", constraint_key(action.table, action.name)))
        if action.not_valid and action.table and action.name and self.in_transaction:
            self.not_valid_in_transaction.add((name_key(action.table), action.name))
        if action.constraint_type != "check" or not action.table:
            return
        column = not_null_check_column(action, stmt.sql)
        if column is not None:
            key = (name_key(action.table), action.name or f"<unnamed check on {column}>")
            self.not_null_checks[key] = (column, not action.not_valid)

    def _validate_constraint(self, action: Action, stmt: Statement) -> None:
        if action.table and action.name:
            key = (name_key(action.table), action.name)
            if key in self.not_null_checks:
                self.not_null_checks[key] = (self.not_null_checks[key][0], True)

    def _drop_constraint(self, action: Action, stmt: Statement) -> None:
        if action.table and action.name:
            self.not_null_checks.pop((name_key(action.table), action.name), None)

    def _set(self, action: Action, stmt: Statement) -> None:
        if action.setting == "all":  # RESET ALL: every setting back to its default
            self.session_settings.clear()
            self.local_settings.clear()
            return
        if action.setting not in TIMEOUT_SETTINGS:
            return
        text = action.value
        value = (
            None if text is None or _is_default(text) else Timeout(text, parse_duration_ms(text))
        )
        if action.local:
            if self.in_transaction:  # outside a transaction SET LOCAL has no effect
                self.local_settings[action.setting] = value
            return
        self.local_settings.pop(action.setting, None)  # a later SET overrides SET LOCAL
        if value is None:
            self.session_settings.pop(action.setting, None)
        else:
            self.session_settings[action.setting] = value

    def _begin(self, action: Action, stmt: Statement) -> None:
        self.in_transaction = True
        self.last_commit = None

    def _commit(self, action: Action, stmt: Statement) -> None:
        self.in_transaction = False
        self.local_settings.clear()
        self.not_valid_in_transaction.clear()
        if action.kind is ActionKind.COMMIT:
            self.last_commit = stmt
        if action.detail is not None and action.detail.endswith("AND CHAIN"):
            self._begin(action, stmt)  # a new transaction begins at once

    def _create_object(self, action: Action, stmt: Statement) -> None:
        if action.name:
            self.created_objects.add((_CREATED_OBJECTS[action.kind], name_key(action.name)))

    def _other(self, action: Action, stmt: Statement) -> None:
        if action.detail in ROLLBACKS:  # ends the transaction like COMMIT does
            self._commit(action, stmt)
            return
        routine = created_routine(action, stmt.sql)
        if routine is not None:
            self.created_objects.add(("function", name_key(routine)))
            return
        renamed = renamed_type(action, stmt.sql)
        if renamed is not None:
            old, new = renamed
            self.renamed_types[new] = old
            if ("type", old) in self.created_objects:  # a new type stays new under its new name
                self.created_objects.discard(("type", old))
                self.created_objects.add(("type", new))


def _is_default(value: str) -> bool:
    return value.strip().strip("'\"").lower() == "default"


_CREATED_OBJECTS = {
    ActionKind.CREATE_TYPE: "type",
    ActionKind.CREATE_VIEW: "view",
    ActionKind.CREATE_SEQUENCE: "sequence",
    ActionKind.CREATE_EXTENSION: "extension",
}

_APPLY: dict[ActionKind, Callable[[StreamState, Action, Statement], None]] = {
    ActionKind.CREATE_TABLE: StreamState._create_table,
    ActionKind.DROP_TABLE: StreamState._drop_table,
    ActionKind.RENAME_TABLE: StreamState._rename_table,
    ActionKind.ADD_COLUMN: StreamState._add_column,
    ActionKind.DROP_COLUMN: StreamState._drop_column,
    ActionKind.RENAME_COLUMN: StreamState._rename_column,
    ActionKind.CREATE_INDEX: StreamState._create_index,
    ActionKind.DROP_INDEX: StreamState._drop_index,
    ActionKind.CREATE_POLICY: StreamState._create_policy,
    ActionKind.ADD_CONSTRAINT: StreamState._add_constraint,
    ActionKind.VALIDATE_CONSTRAINT: StreamState._validate_constraint,
    ActionKind.DROP_CONSTRAINT: StreamState._drop_constraint,
    ActionKind.SET: StreamState._set,
    ActionKind.BEGIN: StreamState._begin,
    ActionKind.COMMIT: StreamState._commit,
    ActionKind.OTHER: StreamState._other,
    **dict.fromkeys(_CREATED_OBJECTS, StreamState._create_object),
}
