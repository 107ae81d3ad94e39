"""Which schema changes the dry-run's SQL declared (pure): the gate of `undeclared-change`.

The parent measures the change itself (base and head snapshots, `bot.sandbox.schema`); the
only other input is the offline upgrade SQL of the dry-run, classified by `bot.analysis`.
Nothing the sandbox child reports (its trace) takes part: the child runs the migration's code
and could claim anything.

A change is declared when a statement of the offline SQL does that to that object:

- table added / removed: CREATE TABLE / DROP TABLE (or DROP SCHEMA) / ALTER TABLE RENAME;
- column added / removed: ADD COLUMN / DROP COLUMN / RENAME COLUMN of that column;
- column type: ALTER COLUMN ... TYPE (which also re-casts its default);
- nullability: SET / DROP NOT NULL, or a PRIMARY KEY added over the column;
- default: SET / DROP DEFAULT (or ALTER COLUMN ... TYPE);
- index added: CREATE INDEX of that name (an unnamed one: any new index of its table), or a
  UNIQUE / PRIMARY KEY / EXCLUDE constraint that builds it; removed: DROP INDEX of that name,
  DROP CONSTRAINT of the constraint it backs, DROP COLUMN of a column it covers;
- constraint added / removed / validated: ADD CONSTRAINT / DROP CONSTRAINT / VALIDATE
  CONSTRAINT of that name (an unnamed ADD: any new constraint of its table), DROP COLUMN of
  a column it covers, DROP TABLE of the table a foreign key references;
- an index's or constraint's definition changed: ALTER COLUMN ... TYPE of a column it
  covers, or a RENAME of a column of its table;
- row level security: ENABLE / DISABLE / FORCE / NO FORCE ROW LEVEL SECURITY on the table;
- policies: CREATE / DROP / ALTER POLICY of that name on the table (a rename of a column
  of the table declares a changed expression);
- sequences owned by a column follow that column (added, dropped, retyped);
- views, triggers, sequences, types, extensions: a statement creating / dropping / altering
  them by name, or any statement mentioning their name (these are not gated finer).

Statements the classifier could not read precisely (a parse error, or an action it could
only call OTHER: raw `op.execute` text such as DO blocks, CREATE FUNCTION, ALTER INDEX,
ATTACH PARTITION) declare a change only when their SQL mentions the changed object by name:
the table's name for a table or its row level security, the table's and the column's for a
column, the index's / constraint's / policy's own name (or, for an index or constraint, its
table's name and every column it covers). A mention is a whole-word, case-insensitive match.
Statements classified precisely declare only what they were classified as.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from bot.analysis.model import Action, ActionKind, Statement
from bot.sandbox.schema import Constraint, Index, SchemaChange, SchemaSnapshot, describe

_INDEX_BUILDING = frozenset({"unique", "primary_key", "exclude"})
_CREATES = {
    ActionKind.CREATE_VIEW: "view",
    ActionKind.DROP_VIEW: "view",
    ActionKind.CREATE_SEQUENCE: "sequence",
    ActionKind.DROP_SEQUENCE: "sequence",
    ActionKind.CREATE_TYPE: "enum",
    ActionKind.DROP_TYPE: "enum",
    ActionKind.ALTER_TYPE_ADD_VALUE: "enum",
    ActionKind.CREATE_EXTENSION: "extension",
}
_COLUMN_FACTS = {
    ActionKind.ADD_COLUMN: ("column+",),
    ActionKind.DROP_COLUMN: ("column-",),
    ActionKind.ALTER_COLUMN_TYPE: ("type", "default", "retyped"),
    ActionKind.SET_NOT_NULL: ("nullable",),
    ActionKind.DROP_NOT_NULL: ("nullable",),
    ActionKind.SET_DEFAULT: ("default",),
    ActionKind.DROP_DEFAULT: ("default",),
}
_RLS_KINDS = frozenset(
    {ActionKind.ENABLE_RLS, ActionKind.DISABLE_RLS, ActionKind.FORCE_RLS, ActionKind.NO_FORCE_RLS}
)
_POLICY_KINDS = frozenset(
    {ActionKind.CREATE_POLICY, ActionKind.DROP_POLICY, ActionKind.ALTER_POLICY}
)


@dataclass(frozen=True)
class Undeclared:
    """A measured change that no statement of the dry-run declared, with its message."""

    change: SchemaChange
    message: str
    names: tuple[str, ...]  # bare names to find the statement that most likely made it


@dataclass
class _Declared:
    facts: set[tuple[str, ...]] = field(default_factory=set)
    imprecise: list[str] = field(default_factory=list)  # lower-cased SQL, mention rule
    everything: list[str] = field(default_factory=list)  # lower-cased SQL of every statement

    def add(self, *fact: str) -> None:
        self.facts.add(fact)

    def has(self, *fact: str) -> bool:
        return fact in self.facts

    def mentioned(self, *names: str, statements: list[str] | None = None) -> bool:
        """Some statement (by default: one the classifier could not read) names all `names`."""
        patterns = [_word(name) for name in names if name]
        return bool(patterns) and any(
            all(pattern.search(sql) for pattern in patterns)
            for sql in (self.imprecise if statements is None else statements)
        )


def undeclared_changes(
    changes: Iterable[SchemaChange],
    statements: Iterable[Statement],
    base: SchemaSnapshot,
    head: SchemaSnapshot,
) -> list[Undeclared]:
    """The changes of `changes` (base -> head) that the offline upgrade SQL did not declare."""
    declared = _declarations(statements)
    found = []
    for change in changes:
        names = _names(change)
        if not _is_declared(change, declared, base, head):
            found.append(Undeclared(change, _message(change), names))
    return found


# -- what the SQL declared -----------------------------------------------------------------


def _declarations(statements: Iterable[Statement]) -> _Declared:
    declared = _Declared()
    for statement in statements:
        lowered = statement.sql.lower()
        declared.everything.append(lowered)
        precise = statement.parse_error is None and all(
            action.kind is not ActionKind.OTHER for action in statement.actions
        )
        if not precise:
            declared.imprecise.append(lowered)
        for action in statement.actions:
            _declare(declared, action)
    return declared


def _declare(declared: _Declared, action: Action) -> None:
    kind = action.kind
    table = _bare(action.table) if action.table else ""
    if kind is ActionKind.CREATE_TABLE:
        declared.add("table+", table)
    elif kind is ActionKind.DROP_TABLE:
        for name in action.tables or (action.table or "",):
            declared.add("table-", _bare(name))
    elif kind is ActionKind.RENAME_TABLE:
        declared.add("table-", table)
        declared.add("table+", _bare(action.name or ""))
        declared.add("renamed", table)
        declared.add("renamed", _bare(action.name or ""))
    elif kind is ActionKind.DROP_SCHEMA:
        declared.add("schema-", _last(action.name or action.table or ""))
    elif kind in _COLUMN_FACTS:
        for fact in _COLUMN_FACTS[kind]:
            declared.add(fact, table, action.column or "")
        if kind is ActionKind.DROP_COLUMN and action.cascade:
            declared.add("cascade", table)
    elif kind is ActionKind.RENAME_COLUMN:
        declared.add("column-", table, action.column or "")
        declared.add("column+", table, action.name or "")
        declared.add("renamed", table)
    elif kind is ActionKind.CREATE_INDEX:
        declared.add("index+", _last(action.name) if action.name else "", table)
    elif kind is ActionKind.DROP_INDEX:
        declared.add("index-", _last(action.name or ""))
    elif kind is ActionKind.REINDEX:
        declared.add("reindexed", _last(action.name or "") or table)
    elif kind is ActionKind.ADD_CONSTRAINT:
        _declare_constraint(declared, action, table)
    elif kind is ActionKind.DROP_CONSTRAINT:
        declared.add("constraint-", table, action.name or "")
        declared.add("index-", action.name or "")  # the index a UNIQUE / PRIMARY KEY built
    elif kind is ActionKind.VALIDATE_CONSTRAINT:
        declared.add("validated", table, action.name or "")
    elif kind in _RLS_KINDS:
        declared.add("rls", table)
    elif kind in _POLICY_KINDS:
        declared.add("policy", table, action.name or "")
    elif kind in _CREATES:
        declared.add(_CREATES[kind], _last(action.name or ""))


def _declare_constraint(declared: _Declared, action: Action, table: str) -> None:
    name = action.name or ""
    declared.add("constraint+", table, name)  # "": unnamed, any new one of the table
    if action.constraint_type in _INDEX_BUILDING:
        declared.add("index+", name, table)
    if action.using_index:  # the index is renamed to the constraint's name
        declared.add("index*", table)
    if action.constraint_type == "primary_key":
        for column in action.columns or ("",):
            declared.add("nullable", table, column)


# -- judging a change -----------------------------------------------------------------------


def _is_declared(
    change: SchemaChange, declared: _Declared, base: SchemaSnapshot, head: SchemaSnapshot
) -> bool:
    name = _bare(change.name)
    if _in_dropped_schema(change.name, declared):
        return True
    kind, what = change.kind, change.object_type
    if what == "table":
        sign = {"added": "table+", "removed": "table-"}.get(kind)
        if sign and declared.has(sign, name):
            return True
        return declared.mentioned(_last(name))
    if what == "column":
        table, column = name.rsplit(".", 1)
        if kind == "added" and declared.has("column+", table, column):
            return True
        if kind == "removed" and declared.has("column-", table, column):
            return True
        if kind == "changed" and _column_change_declared(change, declared, table, column):
            return True
        return declared.mentioned(_last(table), column)
    if what == "rls":
        return declared.has("rls", name) or declared.mentioned(_last(name))
    if what == "index":
        index = (head if kind == "added" else base).indexes.get(change.name)
        return _index_declared(change, index, declared)
    if what == "constraint":
        constraint = (head if kind == "added" else base).constraints.get(change.name)
        return _constraint_declared(change, constraint, declared)
    if what == "policy":
        table, policy = name.rsplit(".", 1)
        if declared.has("policy", table, policy):
            return True
        if kind == "changed" and declared.has("renamed", table):
            return True
        return declared.mentioned(policy)
    if what == "sequence":
        return _sequence_declared(change, declared, base, head)
    if what == "trigger":
        table, trigger = name.rsplit(".", 1)
        if kind == "changed" and declared.has("renamed", table):
            return True
        return declared.mentioned(trigger, statements=declared.everything)
    # view, enum, extension: by name, anywhere in the SQL
    if declared.has(what, _last(name)):
        return True
    if what == "view" and kind == "changed" and _any_rename_mentioned(change, declared):
        return True
    return declared.mentioned(_last(name), statements=declared.everything)


def _column_change_declared(
    change: SchemaChange, declared: _Declared, table: str, column: str
) -> bool:
    attribute = change.attribute or ""
    if attribute in ("type", "nullable", "default"):
        return declared.has(attribute, table, column) or declared.has(attribute, table, "")
    return False  # identity, generated: only the mention rule


def _index_declared(change: SchemaChange, index: Index | None, declared: _Declared) -> bool:
    name = _last(change.name)
    table = _bare(index.table) if index else ""
    columns = index.key_columns if index else ()
    if change.kind == "added":
        exact = declared.has("index+", name, table) or declared.has("index+", "", table)
    elif change.kind == "removed":
        exact = declared.has("index-", name) or _a_covered_column_dropped(declared, table, columns)
    else:
        exact = declared.has("reindexed", name) or _redefined(declared, table, columns)
    return (
        exact
        or declared.has("index*", table)
        or declared.mentioned(name)
        or bool(columns and declared.mentioned(table, *columns))
    )


def _constraint_declared(
    change: SchemaChange, constraint: Constraint | None, declared: _Declared
) -> bool:
    table, name = _bare(change.name).rsplit(".", 1)
    columns = constraint.columns if constraint else ()
    referenced = constraint.referenced_table if constraint else None
    if change.kind == "added":
        exact = declared.has("constraint+", table, name) or declared.has("constraint+", table, "")
    elif change.kind == "removed":
        exact = (
            declared.has("constraint-", table, name)
            or _a_covered_column_dropped(declared, table, columns)
            or bool(referenced and declared.has("table-", _bare(referenced)))
        )
    else:
        exact = declared.has("validated", table, name) or _redefined(declared, table, columns)
    return (
        exact or declared.mentioned(name) or bool(columns and declared.mentioned(table, *columns))
    )


def _redefined(declared: _Declared, table: str, columns: Iterable[str]) -> bool:
    """An index's or constraint's definition changes with a rename in its table, a REINDEX of
    it, or a new type of a column it covers."""
    return (
        declared.has("renamed", table)
        or declared.has("reindexed", table)
        or any(declared.has("retyped", table, column) for column in columns)
    )


def _a_covered_column_dropped(declared: _Declared, table: str, columns: Iterable[str]) -> bool:
    """DROP COLUMN takes the indexes and constraints over that column with it."""
    if declared.has("cascade", table):
        return True
    return any(declared.has("column-", table, column) for column in columns)


def _sequence_declared(
    change: SchemaChange, declared: _Declared, base: SchemaSnapshot, head: SchemaSnapshot
) -> bool:
    sequence = (head if change.kind == "added" else base).sequences.get(change.name)
    owner = sequence.owned_by if sequence else None
    if owner:
        table, column = _bare(owner).rsplit(".", 1)
        follows = {"added": "column+", "removed": "column-"}.get(change.kind, "retyped")
        if declared.has(follows, table, column) or declared.has("renamed", table):
            return True
    name = _last(change.name)
    return declared.has("sequence", name) or declared.mentioned(
        name, statements=declared.everything
    )


def _any_rename_mentioned(change: SchemaChange, declared: _Declared) -> bool:
    """A view's text changes when a table or column it reads is renamed."""
    before = (change.before or "").lower()
    return any(
        fact[0] == "renamed" and _word(_last(fact[1])).search(before) for fact in declared.facts
    )


def _in_dropped_schema(name: str, declared: _Declared) -> bool:
    schema = name.split(".", 1)[0] if "." in name else ""
    return bool(schema) and declared.has("schema-", schema)


# -- messages and names ---------------------------------------------------------------------


def _message(change: SchemaChange) -> str:
    name = _bare(change.name)
    if change.kind == "removed" and change.object_type in ("table", "column"):
        return (
            f"{change.object_type} {name} disappeared, but the dry-run's SQL never dropped or "
            "renamed it"
        )
    return f"{describe(replace(change, name=name))}, but the dry-run's SQL never declared it"


def _names(change: SchemaChange) -> tuple[str, ...]:
    """Bare names a statement making this change would mention."""
    name = _bare(change.name)
    if change.object_type in ("column", "policy", "constraint", "trigger"):
        table, own = name.rsplit(".", 1)
        return (_last(table), own)
    return (_last(name),)


def _bare(name: str) -> str:
    """`public.orders` -> `orders`; quotes dropped; other schemas kept (`audit.log`)."""
    parts = [part.strip('"') for part in name.split(".")]
    if len(parts) > 1 and parts[0] == "public":
        parts = parts[1:]
    return ".".join(parts)


def _last(name: str) -> str:
    """The object's own name, without its schema."""
    return name.split(".")[-1].strip('"') if name else ""


def _word(name: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w$]){re.escape(name.lower())}(?![\w$])")
