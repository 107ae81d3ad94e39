"""A database schema as plain data, read from the catalogs, and the difference of two.

Over 400 lines: one short comparison per kind of catalog object, all alike.

Pure: `bot.sandbox.snapshot` fills a `SchemaSnapshot` from a live database; this module
only compares snapshots and renders the changes. Names are schema-qualified and unquoted
("public.orders"); sub-objects append their own name ("public.orders.total").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

ChangeKind = Literal["added", "removed", "changed"]
ObjectType = Literal[
    "extension",
    "enum",
    "sequence",
    "table",
    "column",
    "rls",
    "constraint",
    "index",
    "view",
    "trigger",
    "policy",
]

DEFAULT_IGNORED_TABLES = frozenset({"alembic_version"})

# Changes are listed in ObjectType's order: what others depend on first.
_OBJECT_ORDER: dict[str, int] = {name: i for i, name in enumerate(get_args(ObjectType))}
_KIND_ORDER = {"removed": 0, "added": 1, "changed": 2}


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # format_type(), e.g. "numeric(12,2)"
    nullable: bool
    default: str | None = None  # DEFAULT expression (None for generated columns)
    identity: str | None = None  # "always" | "by default"
    generated: str | None = None  # GENERATED ALWAYS AS (<this>) STORED

    def render(self) -> str:
        parts = [self.type]
        if not self.nullable:
            parts.append("NOT NULL")
        if self.default is not None:
            parts.append(f"DEFAULT {self.default}")
        if self.identity:
            parts.append(f"GENERATED {self.identity.upper()} AS IDENTITY")
        if self.generated is not None:
            parts.append(f"GENERATED ALWAYS AS ({self.generated}) STORED")
        return " ".join(parts)


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    columns: tuple[Column, ...] = ()
    rls_enabled: bool = False
    rls_forced: bool = False
    partitioned: bool = False  # a partitioned (parent) table
    partition_of: str | None = None  # the parent, for a partition

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    def column(self, name: str) -> Column | None:
        return next((column for column in self.columns if column.name == name), None)

    @property
    def rls_state(self) -> str:
        state = "enabled" if self.rls_enabled else "disabled"
        return f"{state}, forced" if self.rls_forced else state

    def render(self) -> str:
        return "(" + ", ".join(f"{c.name} {c.render()}" for c in self.columns) + ")"


@dataclass(frozen=True)
class Index:
    name: str  # schema-qualified
    table: str
    definition: str  # pg_get_indexdef()
    valid: bool = True
    unique: bool = False
    primary: bool = False
    key_columns: tuple[str, ...] = ()  # column names, or expressions, in key order


@dataclass(frozen=True)
class Constraint:
    table: str
    name: str
    type: str  # "primary key" | "foreign key" | "unique" | "check" | "exclusion" | ...
    definition: str  # pg_get_constraintdef()
    validated: bool = True
    columns: tuple[str, ...] = ()
    referenced_table: str | None = None  # foreign keys only
    referenced_columns: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.table}.{self.name}"


@dataclass(frozen=True)
class Sequence:
    name: str
    data_type: str
    start: int
    increment: int
    minimum: int
    maximum: int
    cycle: bool = False
    owned_by: str | None = None  # "schema.table.column"

    def render(self) -> str:
        text = (
            f"{self.data_type} START {self.start} INCREMENT {self.increment}"
            f" MINVALUE {self.minimum} MAXVALUE {self.maximum}"
        )
        text += " CYCLE" if self.cycle else ""
        return text + (f" OWNED BY {self.owned_by}" if self.owned_by else "")


@dataclass(frozen=True)
class Policy:
    table: str
    name: str
    command: str  # ALL | SELECT | INSERT | UPDATE | DELETE
    roles: tuple[str, ...] = ("public",)
    using: str | None = None
    with_check: str | None = None
    permissive: bool = True

    @property
    def key(self) -> str:
        return f"{self.table}.{self.name}"

    def render(self) -> str:
        text = "PERMISSIVE" if self.permissive else "RESTRICTIVE"
        text += f" FOR {self.command} TO {', '.join(self.roles)}"
        if self.using is not None:
            text += f" USING ({self.using})"
        if self.with_check is not None:
            text += f" WITH CHECK ({self.with_check})"
        return text


@dataclass(frozen=True)
class Trigger:
    table: str
    name: str
    definition: str  # pg_get_triggerdef()

    @property
    def key(self) -> str:
        return f"{self.table}.{self.name}"


@dataclass(frozen=True)
class View:
    name: str
    definition: str  # pg_get_viewdef()
    materialized: bool = False

    def render(self) -> str:
        kind = "MATERIALIZED VIEW" if self.materialized else "VIEW"
        return f"{kind} AS {_one_line(self.definition)}"


@dataclass(frozen=True)
class SchemaSnapshot:
    """Everything in the user schemas (not pg_catalog, information_schema, pg_toast) that
    the sandbox compares. Keys are schema-qualified names (sub-objects: "table.name")."""

    tables: Mapping[str, Table] = field(default_factory=dict)
    indexes: Mapping[str, Index] = field(default_factory=dict)
    constraints: Mapping[str, Constraint] = field(default_factory=dict)
    sequences: Mapping[str, Sequence] = field(default_factory=dict)
    enums: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    policies: Mapping[str, Policy] = field(default_factory=dict)
    triggers: Mapping[str, Trigger] = field(default_factory=dict)
    views: Mapping[str, View] = field(default_factory=dict)
    extensions: Mapping[str, str] = field(default_factory=dict)  # name -> version

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (tuples serialise as lists)."""
        return asdict(self)


@dataclass(frozen=True)
class SchemaChange:
    kind: ChangeKind
    object_type: ObjectType
    name: str  # e.g. "public.orders.total"
    before: str | None = None
    after: str | None = None
    attribute: str | None = None  # for "changed": which property, e.g. "type", "nullable"

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self)


# -- diff ----------------------------------------------------------------------------------


def diff_schema(
    before: SchemaSnapshot,
    after: SchemaSnapshot,
    *,
    ignore_tables: Iterable[str] = DEFAULT_IGNORED_TABLES,
    column_order: bool = False,
) -> list[SchemaChange]:
    """What changed from `before` to `after`, in a deterministic order; [] when equal.

    Objects of an added or removed table (its columns, indexes, ...) are not listed on
    their own. `ignore_tables` names tables (bare or schema-qualified) left out entirely.
    Column order is ignored unless `column_order`: a rollback that re-adds a dropped column
    cannot put it back in place, and the data it lost is caught by the checksums.
    """
    ignored = _ignored(before, after, set(ignore_tables))
    gone_or_new = (_relations(before) ^ _relations(after)) | ignored
    changes = [
        *_diff_extensions(before, after),
        *_diff_enums(before, after),
        *_diff_sequences(before, after, gone_or_new),
        *_diff_tables(before, after, ignored, column_order),
        *_diff_constraints(before, after, gone_or_new),
        *_diff_indexes(before, after, gone_or_new),
        *_diff_views(before, after),
        *_diff_triggers(before, after, gone_or_new),
        *_diff_policies(before, after, gone_or_new),
    ]
    return sorted(changes, key=_sort_key)


def describe(change: SchemaChange) -> str:
    """One human line, e.g. "column public.orders.total: type integer → numeric(12,2)"."""
    subject = f"{change.object_type} {change.name}"
    if change.kind == "added":
        return f"{subject} added" + (f": {_show(change.after)}" if change.after else "")
    if change.kind == "removed":
        return f"{subject} removed" + (f" (was: {_show(change.before)})" if change.before else "")
    attribute = f"{change.attribute} " if change.attribute else ""
    return f"{subject}: {attribute}{_show(change.before)} → {_show(change.after)}"


def render_diff(changes: Iterable[SchemaChange]) -> list[str]:
    """The diff as text lines, one per change, prefixed +, - or ~."""
    marks = {"added": "+", "removed": "-", "changed": "~"}
    return [f"{marks[change.kind]} {describe(change)}" for change in changes]


# -- helpers for the sandbox findings -------------------------------------------------------


def new_indexes(before: SchemaSnapshot, after: SchemaSnapshot) -> list[Index]:
    """Indexes of `after` that `before` lacks or defines differently, by name."""
    return [
        index
        for name, index in sorted(after.indexes.items())
        if name not in before.indexes or before.indexes[name].definition != index.definition
    ]


# -- internals ----------------------------------------------------------------------------


def _ignored(before: SchemaSnapshot, after: SchemaSnapshot, names: set[str]) -> set[str]:
    every = {*before.tables.values(), *after.tables.values()}
    return {t.qualified for t in every if t.name in names or t.qualified in names}


def _relations(snapshot: SchemaSnapshot) -> set[str]:
    return {*snapshot.tables, *snapshot.views}


def _sort_key(change: SchemaChange) -> tuple[int, str, int, str]:
    return (
        _OBJECT_ORDER[change.object_type],
        change.name,
        _KIND_ORDER[change.kind],
        change.attribute or "",
    )


def _show(value: str | None) -> str:
    return "(none)" if value is None else _one_line(value)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _keyed_diff(
    object_type: ObjectType,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    render: Callable[[Any], str],
    attributes: Mapping[str, Callable[[Any], str | None]],
    skip: Callable[[str, Any], bool] = lambda _name, _value: False,
) -> list[SchemaChange]:
    """Added / removed objects by key, and one change per differing attribute."""
    changes: list[SchemaChange] = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if skip(name, old if new is None else new):
            continue
        if old is None:
            changes.append(SchemaChange("added", object_type, name, after=render(new)))
        elif new is None:
            changes.append(SchemaChange("removed", object_type, name, before=render(old)))
        else:
            changes += _attribute_changes(object_type, name, old, new, attributes)
    return changes


def _attribute_changes(
    object_type: ObjectType,
    name: str,
    old: Any,
    new: Any,
    attributes: Mapping[str, Callable[[Any], str | None]],
) -> list[SchemaChange]:
    changes = []
    for attribute, read in attributes.items():
        old_value, new_value = read(old), read(new)
        if old_value != new_value:
            changes.append(
                SchemaChange("changed", object_type, name, old_value, new_value, attribute)
            )
    return changes


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _diff_extensions(before: SchemaSnapshot, after: SchemaSnapshot) -> list[SchemaChange]:
    return _keyed_diff(
        "extension",
        before.extensions,
        after.extensions,
        render=lambda version: f"version {version}",
        attributes={"version": lambda version: version},
    )


def _diff_enums(before: SchemaSnapshot, after: SchemaSnapshot) -> list[SchemaChange]:
    return _keyed_diff(
        "enum",
        before.enums,
        after.enums,
        render=_render_labels,
        attributes={"labels": _render_labels},
    )


def _render_labels(labels: tuple[str, ...]) -> str:
    return "(" + ", ".join(repr(label) for label in labels) + ")"


def _diff_sequences(
    before: SchemaSnapshot, after: SchemaSnapshot, skipped_tables: set[str]
) -> list[SchemaChange]:
    return _keyed_diff(
        "sequence",
        before.sequences,
        after.sequences,
        render=Sequence.render,
        attributes={
            "type": lambda s: s.data_type,
            "start": lambda s: str(s.start),
            "increment": lambda s: str(s.increment),
            "minvalue": lambda s: str(s.minimum),
            "maxvalue": lambda s: str(s.maximum),
            "cycle": lambda s: _yes_no(s.cycle),
            "owned by": lambda s: s.owned_by,
        },
        skip=lambda _name, seq: _owner_table(seq.owned_by) in skipped_tables,
    )


def _owner_table(owned_by: str | None) -> str | None:
    return owned_by.rsplit(".", 1)[0] if owned_by else None


def _diff_tables(
    before: SchemaSnapshot, after: SchemaSnapshot, ignored: set[str], column_order: bool
) -> list[SchemaChange]:
    changes = _keyed_diff(
        "table",
        before.tables,
        after.tables,
        render=Table.render,
        attributes={
            "partitioned": lambda t: _yes_no(t.partitioned),
            "partition of": lambda t: t.partition_of,
        },
        skip=lambda name, _table: name in ignored,
    )
    for name in sorted(before.tables.keys() & after.tables.keys() - ignored):
        old, new = before.tables[name], after.tables[name]
        changes += _diff_columns(old, new, column_order)
        if old.rls_state != new.rls_state:
            changes.append(SchemaChange("changed", "rls", name, old.rls_state, new.rls_state))
    return changes


def _diff_columns(old: Table, new: Table, column_order: bool) -> list[SchemaChange]:
    changes = _keyed_diff(
        "column",
        {f"{old.qualified}.{c.name}": c for c in old.columns},
        {f"{new.qualified}.{c.name}": c for c in new.columns},
        render=Column.render,
        attributes={
            "type": lambda c: c.type,
            "nullable": lambda c: "NULL" if c.nullable else "NOT NULL",
            "default": lambda c: c.default,
            "identity": lambda c: c.identity,
            "generated": lambda c: c.generated,
        },
    )
    old_order = [c.name for c in old.columns if new.column(c.name)]
    new_order = [c.name for c in new.columns if old.column(c.name)]
    if column_order and old_order != new_order:
        changes.append(
            SchemaChange(
                "changed",
                "table",
                old.qualified,
                ", ".join(old_order),
                ", ".join(new_order),
                "column order",
            )
        )
    return changes


def _diff_constraints(
    before: SchemaSnapshot, after: SchemaSnapshot, skipped_tables: set[str]
) -> list[SchemaChange]:
    return _keyed_diff(
        "constraint",
        before.constraints,
        after.constraints,
        render=lambda c: c.definition,  # says NOT VALID itself
        attributes={
            "type": lambda c: c.type,
            "definition": lambda c: c.definition,
            "validated": lambda c: _yes_no(c.validated),
        },
        skip=lambda _name, c: c.table in skipped_tables,
    )


def _diff_indexes(
    before: SchemaSnapshot, after: SchemaSnapshot, skipped_tables: set[str]
) -> list[SchemaChange]:
    return _keyed_diff(
        "index",
        before.indexes,
        after.indexes,
        render=lambda i: i.definition + ("" if i.valid else " (INVALID)"),
        attributes={
            "definition": lambda i: i.definition,
            "valid": lambda i: _yes_no(i.valid),
            "primary": lambda i: _yes_no(i.primary),
        },
        skip=lambda _name, i: i.table in skipped_tables,
    )


def _diff_views(before: SchemaSnapshot, after: SchemaSnapshot) -> list[SchemaChange]:
    return _keyed_diff(
        "view",
        before.views,
        after.views,
        render=View.render,
        attributes={
            "materialized": lambda v: _yes_no(v.materialized),
            "definition": lambda v: _one_line(v.definition),
        },
    )


def _diff_triggers(
    before: SchemaSnapshot, after: SchemaSnapshot, skipped_tables: set[str]
) -> list[SchemaChange]:
    return _keyed_diff(
        "trigger",
        before.triggers,
        after.triggers,
        render=lambda t: t.definition,
        attributes={"definition": lambda t: t.definition},
        skip=lambda _name, t: t.table in skipped_tables,
    )


def _diff_policies(
    before: SchemaSnapshot, after: SchemaSnapshot, skipped_tables: set[str]
) -> list[SchemaChange]:
    return _keyed_diff(
        "policy",
        before.policies,
        after.policies,
        render=Policy.render,
        attributes={
            "command": lambda p: p.command,
            "roles": lambda p: ", ".join(p.roles),
            "using": lambda p: p.using,
            "with check": lambda p: p.with_check,
            "permissive": lambda p: "PERMISSIVE" if p.permissive else "RESTRICTIVE",
        },
        skip=lambda _name, p: p.table in skipped_tables,
    )
