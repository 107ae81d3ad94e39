"""diff_schema on hand-made snapshots: added / removed / changed for every object type."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from bot.sandbox.schema import (
    Column,
    Constraint,
    Index,
    Policy,
    SchemaChange,
    SchemaSnapshot,
    Sequence,
    Table,
    Trigger,
    View,
    describe,
    diff_schema,
    new_indexes,
    render_diff,
)

ORDERS = Table(
    "public",
    "orders",
    columns=(
        Column("id", "bigint", nullable=False, identity="always"),
        Column("total", "integer", nullable=True, default="0"),
    ),
)
ORDERS_PKEY = Index(
    "public.orders_pkey",
    "public.orders",
    "CREATE UNIQUE INDEX orders_pkey ON public.orders USING btree (id)",
    unique=True,
    primary=True,
    key_columns=("id",),
)
TOTAL_CHECK = Constraint("public.orders", "total_check", "check", "CHECK ((total >= 0))")
SEQUENCE = Sequence("public.counter", "bigint", 1, 1, 1, 9223372036854775807)
POLICY = Policy("public.orders", "tenant", "ALL", ("public",), "(tenant_id = 1)", None, True)
TRIGGER = Trigger(
    "public.orders",
    "audit",
    "CREATE TRIGGER audit AFTER INSERT ON public.orders FOR EACH ROW EXECUTE FUNCTION f()",
)
VIEW = View("public.big_orders", " SELECT orders.id\n   FROM orders\n  WHERE total > 100;")


def snapshot(**overrides: Any) -> SchemaSnapshot:
    base: dict[str, Any] = {
        "tables": {"public.orders": ORDERS},
        "indexes": {ORDERS_PKEY.name: ORDERS_PKEY},
        "constraints": {TOTAL_CHECK.key: TOTAL_CHECK},
        "sequences": {SEQUENCE.name: SEQUENCE},
        "enums": {"public.mood": ("sad", "happy")},
        "policies": {POLICY.key: POLICY},
        "triggers": {TRIGGER.key: TRIGGER},
        "views": {VIEW.name: VIEW},
        "extensions": {"pgcrypto": "1.3"},
    }
    return SchemaSnapshot(**(base | overrides))


def with_orders(**changes: Any) -> dict[str, Table]:
    return {"public.orders": replace(ORDERS, **changes)}


def only(changes: list[SchemaChange]) -> SchemaChange:
    assert len(changes) == 1, render_diff(changes)
    return changes[0]


def test_equal_snapshots_have_an_empty_diff() -> None:
    assert diff_schema(snapshot(), snapshot()) == []


# Each case: the "after" snapshot's overrides -> (kind, object_type, name) expected.
REMOVALS: dict[str, tuple[dict[str, Any], str]] = {
    "table": ({"tables": {}}, "public.orders"),
    "index": ({"indexes": {}}, "public.orders_pkey"),
    "constraint": ({"constraints": {}}, "public.orders.total_check"),
    "sequence": ({"sequences": {}}, "public.counter"),
    "enum": ({"enums": {}}, "public.mood"),
    "policy": ({"policies": {}}, "public.orders.tenant"),
    "trigger": ({"triggers": {}}, "public.orders.audit"),
    "view": ({"views": {}}, "public.big_orders"),
    "extension": ({"extensions": {}}, "pgcrypto"),
}


@pytest.mark.parametrize("object_type", sorted(REMOVALS))
def test_a_removed_object_is_reported_as_removed(object_type: str) -> None:
    overrides, name = REMOVALS[object_type]
    change = only(diff_schema(snapshot(), snapshot(**overrides)))
    assert (change.kind, change.object_type, change.name) == ("removed", object_type, name)
    assert change.before is not None and change.after is None


@pytest.mark.parametrize("object_type", sorted(REMOVALS))
def test_an_added_object_is_reported_as_added(object_type: str) -> None:
    overrides, name = REMOVALS[object_type]
    change = only(diff_schema(snapshot(**overrides), snapshot()))
    assert (change.kind, change.object_type, change.name) == ("added", object_type, name)
    assert change.after is not None and change.before is None


def test_column_added_and_removed() -> None:
    extra = Column("note", "text", nullable=True)
    wider = with_orders(columns=(*ORDERS.columns, extra))
    added = only(diff_schema(snapshot(), snapshot(tables=wider)))
    removed = only(diff_schema(snapshot(tables=wider), snapshot()))
    assert (added.kind, added.object_type, added.name) == ("added", "column", "public.orders.note")
    assert added.after == "text"
    assert (removed.kind, removed.name) == ("removed", "public.orders.note")


@pytest.mark.parametrize(
    ("column", "attribute", "before", "after"),
    [
        (Column("total", "numeric(12,2)", True, "0"), "type", "integer", "numeric(12,2)"),
        (Column("total", "integer", False, "0"), "nullable", "NULL", "NOT NULL"),
        (Column("total", "integer", True, None), "default", "0", None),
        (Column("total", "integer", True, identity="by default"), "identity", None, "by default"),
        (Column("total", "integer", True, generated="id * 2"), "generated", None, "id * 2"),
    ],
)
def test_a_changed_column_names_the_attribute(
    column: Column, attribute: str, before: str | None, after: str | None
) -> None:
    changes = diff_schema(
        snapshot(), snapshot(tables=with_orders(columns=(ORDERS.columns[0], column)))
    )
    change = next(c for c in changes if c.attribute == attribute)
    assert (change.kind, change.object_type, change.name) == (
        "changed",
        "column",
        "public.orders.total",
    )
    assert (change.before, change.after) == (before, after)


def test_describe_a_type_change_in_one_line() -> None:
    column = Column("total", "numeric(12,2)", True, "0")
    changes = diff_schema(
        snapshot(), snapshot(tables=with_orders(columns=(ORDERS.columns[0], column)))
    )
    assert [describe(c) for c in changes] == [
        "column public.orders.total: type integer → numeric(12,2)"
    ]


def test_rls_enabled_and_forced_is_an_rls_change() -> None:
    change = only(
        diff_schema(snapshot(), snapshot(tables=with_orders(rls_enabled=True, rls_forced=True)))
    )
    assert (change.kind, change.object_type, change.name) == ("changed", "rls", "public.orders")
    assert (change.before, change.after) == ("disabled", "enabled, forced")


@pytest.mark.parametrize(
    ("overrides", "object_type", "attribute"),
    [
        ({"indexes": {ORDERS_PKEY.name: replace(ORDERS_PKEY, valid=False)}}, "index", "valid"),
        (
            {
                "indexes": {
                    ORDERS_PKEY.name: replace(ORDERS_PKEY, definition="CREATE ... (id DESC)")
                }
            },
            "index",
            "definition",
        ),
        (
            {"constraints": {TOTAL_CHECK.key: replace(TOTAL_CHECK, validated=False)}},
            "constraint",
            "validated",
        ),
        (
            {"constraints": {TOTAL_CHECK.key: replace(TOTAL_CHECK, definition="CHECK ((t > 1))")}},
            "constraint",
            "definition",
        ),
        ({"sequences": {SEQUENCE.name: replace(SEQUENCE, increment=2)}}, "sequence", "increment"),
        ({"enums": {"public.mood": ("sad", "happy", "meh")}}, "enum", "labels"),
        ({"policies": {POLICY.key: replace(POLICY, using="true")}}, "policy", "using"),
        ({"policies": {POLICY.key: replace(POLICY, roles=("app",))}}, "policy", "roles"),
        ({"policies": {POLICY.key: replace(POLICY, permissive=False)}}, "policy", "permissive"),
        (
            {"triggers": {TRIGGER.key: replace(TRIGGER, definition="CREATE TRIGGER audit ...")}},
            "trigger",
            "definition",
        ),
        ({"views": {VIEW.name: replace(VIEW, definition=" SELECT 1;")}}, "view", "definition"),
        ({"views": {VIEW.name: replace(VIEW, materialized=True)}}, "view", "materialized"),
        ({"extensions": {"pgcrypto": "1.4"}}, "extension", "version"),
    ],
)
def test_a_changed_object_names_the_attribute(
    overrides: dict[str, Any], object_type: str, attribute: str
) -> None:
    change = only(diff_schema(snapshot(), snapshot(**overrides)))
    assert (change.kind, change.object_type, change.attribute) == (
        "changed",
        object_type,
        attribute,
    )
    assert change.before != change.after


def test_objects_of_a_removed_table_are_not_listed_separately() -> None:
    after = snapshot(tables={}, indexes={}, constraints={}, policies={}, triggers={})
    changes = diff_schema(snapshot(), after)
    assert [(c.kind, c.object_type, c.name) for c in changes] == [
        ("removed", "table", "public.orders")
    ]


def test_alembic_version_is_ignored_by_default_and_on_request_only() -> None:
    version = Table("public", "alembic_version", (Column("version_num", "varchar(32)", False),))
    with_version = snapshot(tables={"public.orders": ORDERS, "public.alembic_version": version})
    assert diff_schema(snapshot(), with_version) == []
    change = only(diff_schema(snapshot(), with_version, ignore_tables=()))
    assert change.name == "public.alembic_version"


def test_column_order_is_reported_only_when_asked() -> None:
    reordered = with_orders(columns=tuple(reversed(ORDERS.columns)))
    assert diff_schema(snapshot(), snapshot(tables=reordered)) == []
    change = only(diff_schema(snapshot(), snapshot(tables=reordered), column_order=True))
    assert (change.object_type, change.attribute) == ("table", "column order")
    assert (change.before, change.after) == ("id, total", "total, id")


def test_order_is_deterministic_and_dependencies_first() -> None:
    after = snapshot(
        extensions={},
        views={},
        tables=with_orders(columns=(*ORDERS.columns, Column("z", "text", True))),
        enums={"public.mood": ("sad",), "public.a_mood": ("x",)},
    )
    changes = diff_schema(snapshot(), after)
    assert [(c.object_type, c.name) for c in changes] == [
        ("extension", "pgcrypto"),
        ("enum", "public.a_mood"),
        ("enum", "public.mood"),
        ("column", "public.orders.z"),
        ("view", "public.big_orders"),
    ]
    assert diff_schema(snapshot(), after) == changes


def test_changes_and_snapshots_are_json_able() -> None:
    changes = diff_schema(snapshot(), snapshot(extensions={}))
    assert json.loads(json.dumps([c.to_dict() for c in changes])) == [
        {
            "kind": "removed",
            "object_type": "extension",
            "name": "pgcrypto",
            "before": "version 1.3",
            "after": None,
            "attribute": None,
        }
    ]
    data = json.loads(json.dumps(snapshot().to_dict()))
    assert data["tables"]["public.orders"]["columns"][1]["type"] == "integer"


def test_render_diff_marks_each_line_and_keeps_it_on_one_line() -> None:
    lines = render_diff(diff_schema(snapshot(), snapshot(views={}, extensions={"pgcrypto": "1.4"})))
    assert lines == [
        "~ extension pgcrypto: version 1.3 → 1.4",
        "- view public.big_orders removed"
        " (was: VIEW AS SELECT orders.id FROM orders WHERE total > 100;)",
    ]


def test_new_indexes_are_the_added_and_redefined_ones() -> None:
    new_index = Index(
        "public.ix_total", "public.orders", "CREATE INDEX ix_total ON ...", valid=False
    )
    rebuilt = replace(ORDERS_PKEY, definition="CREATE UNIQUE INDEX orders_pkey ... (id DESC)")
    after = snapshot(indexes={ORDERS_PKEY.name: rebuilt, new_index.name: new_index})
    assert [i.name for i in new_indexes(snapshot(), after)] == [
        "public.ix_total",
        "public.orders_pkey",
    ]
    assert new_indexes(snapshot(), snapshot()) == []
