"""take_snapshot on a real PostgreSQL: every object type read from the catalogs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from bot.sandbox.database import SandboxServer, create_sandbox
from bot.sandbox.schema import describe, diff_schema, new_indexes
from bot.sandbox.snapshot import take_snapshot

SCHEMA = """
CREATE EXTENSION pgcrypto;
CREATE SCHEMA billing;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE SEQUENCE billing.counter START 5 INCREMENT 2;
CREATE TABLE customers (
    id serial PRIMARY KEY,
    email varchar(50) NOT NULL UNIQUE,
    m mood DEFAULT 'ok',
    tenant_id int
);
CREATE TABLE billing.invoices (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers (id),
    total integer CHECK (total >= 0),
    doubled integer GENERATED ALWAYS AS (total * 2) STORED
);
ALTER TABLE billing.invoices ADD CONSTRAINT small CHECK (total < 1000) NOT VALID;
CREATE INDEX ix_invoices_total ON billing.invoices (total, lower(customer_id::text))
    WHERE total > 0;
ALTER TABLE customers ENABLE ROW LEVEL SECURITY;
ALTER TABLE customers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON customers AS RESTRICTIVE FOR SELECT
    USING (tenant_id = current_setting('app.tenant')::int);
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER audit BEFORE INSERT ON billing.invoices FOR EACH ROW EXECUTE FUNCTION touch();
CREATE VIEW big_invoices AS SELECT id FROM billing.invoices WHERE total > 100;
CREATE MATERIALIZED VIEW customer_ids AS SELECT id FROM customers;
CREATE TABLE events (at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
"""


@pytest.fixture
def conn(sandbox_server: SandboxServer) -> Iterator[psycopg.Connection[Any]]:
    """An admin connection to a fresh sandbox database (dropped afterwards)."""
    with (
        create_sandbox(sandbox_server) as sandbox,
        psycopg.connect(sandbox.admin_conninfo, autocommit=True) as connection,
    ):
        yield connection


def test_snapshot_reads_every_object_type(conn: psycopg.Connection[Any]) -> None:
    conn.execute(SCHEMA)
    snap = take_snapshot(conn)

    assert set(snap.tables) == {
        "public.customers",
        "billing.invoices",
        "public.events",
        "public.events_2024",
    }
    customers = snap.tables["public.customers"]
    assert [c.name for c in customers.columns] == ["id", "email", "m", "tenant_id"]
    assert (customers.rls_enabled, customers.rls_forced) == (True, True)
    email = customers.column("email")
    assert email is not None and (email.type, email.nullable) == ("character varying(50)", False)
    mood = customers.column("m")
    assert mood is not None and (mood.type, mood.default) == ("mood", "'ok'::mood")

    invoices = snap.tables["billing.invoices"]
    identity, doubled = invoices.column("id"), invoices.column("doubled")
    assert identity is not None and identity.identity == "always"
    assert doubled is not None and (doubled.generated, doubled.default) == ("(total * 2)", None)
    assert snap.tables["public.events"].partitioned
    assert snap.tables["public.events_2024"].partition_of == "public.events"

    index = snap.indexes["billing.ix_invoices_total"]
    assert index.table == "billing.invoices" and index.valid and not index.unique
    assert index.key_columns == ("total", "lower(customer_id::text)")
    assert "WHERE (total > 0)" in index.definition
    assert snap.indexes["public.customers_pkey"].primary

    fk = snap.constraints["billing.invoices.invoices_customer_id_fkey"]
    assert (fk.type, fk.columns, fk.referenced_table, fk.referenced_columns) == (
        "foreign key",
        ("customer_id",),
        "public.customers",
        ("id",),
    )
    small = snap.constraints["billing.invoices.small"]
    assert (small.type, small.validated) == ("check", False)
    assert snap.constraints["public.customers.customers_email_key"].type == "unique"

    counter = snap.sequences["billing.counter"]
    assert (counter.start, counter.increment, counter.owned_by) == (5, 2, None)
    assert snap.sequences["public.customers_id_seq"].owned_by == "public.customers.id"
    assert snap.enums == {"public.mood": ("sad", "ok", "happy")}

    policy = snap.policies["public.customers.tenant"]
    assert (policy.command, policy.roles, policy.permissive) == ("SELECT", ("public",), False)
    assert policy.using is not None and "current_setting('app.tenant'" in policy.using

    trigger = snap.triggers["billing.invoices.audit"]
    assert trigger.definition.startswith("CREATE TRIGGER audit BEFORE INSERT ON billing.invoices")
    assert not snap.views["public.big_invoices"].materialized
    assert snap.views["public.customer_ids"].materialized
    assert snap.extensions["pgcrypto"]
    assert "plpgsql" in snap.extensions


def test_snapshot_leaves_out_system_schemas(conn: psycopg.Connection[Any]) -> None:
    snap = take_snapshot(conn)
    assert not snap.tables and not snap.indexes and not snap.views and not snap.enums
    assert set(snap.extensions) == {"plpgsql"}


def test_two_snapshots_of_the_same_schema_are_equal(conn: psycopg.Connection[Any]) -> None:
    conn.execute(SCHEMA)
    assert take_snapshot(conn) == take_snapshot(conn)
    assert diff_schema(take_snapshot(conn), take_snapshot(conn)) == []


def test_diff_of_a_real_alter(conn: psycopg.Connection[Any]) -> None:
    conn.execute(SCHEMA)
    before = take_snapshot(conn)
    conn.execute(
        "DROP VIEW big_invoices;"
        "ALTER TABLE billing.invoices DROP COLUMN doubled;"
        "ALTER TABLE billing.invoices ALTER COLUMN total TYPE numeric(12,2);"
        "ALTER TABLE customers ADD COLUMN note text;"
        "CREATE INDEX ix_customers_tenant ON customers (tenant_id);"
        "ALTER TABLE customers DISABLE ROW LEVEL SECURITY;"
        "DROP POLICY tenant ON customers;"
        "ALTER TYPE mood ADD VALUE 'meh';"
    )
    after = take_snapshot(conn)
    lines = [describe(change) for change in diff_schema(before, after)]

    assert "column billing.invoices.total: type integer → numeric(12,2)" in lines
    assert "column public.customers.note added: text" in lines
    assert any(line.startswith("column billing.invoices.doubled removed") for line in lines)
    assert "rls public.customers: enabled, forced → disabled, forced" in lines
    assert any(line.startswith("policy public.customers.tenant removed") for line in lines)
    assert any(line.startswith("view public.big_invoices removed") for line in lines)
    assert "enum public.mood: labels ('sad', 'ok', 'happy') → ('sad', 'ok', 'happy', 'meh')" in (
        lines
    )
    assert [i.name for i in new_indexes(before, after)] == [
        "billing.ix_invoices_total",  # its definition now casts to numeric
        "public.ix_customers_tenant",
    ]


def test_snapshot_as_the_sandbox_role(sandbox_server: SandboxServer) -> None:
    with create_sandbox(sandbox_server) as sandbox:
        with psycopg.connect(sandbox.conninfo) as connection:
            connection.execute("CREATE TABLE t (id int PRIMARY KEY)")
            snap = take_snapshot(connection)
            connection.commit()
        assert set(snap.tables) == {"public.t"}
        assert set(snap.indexes) == {"public.t_pkey"}


def test_snapshot_of_fifty_tables_sees_every_table_and_index(
    conn: psycopg.Connection[Any],
) -> None:
    for n in range(50):
        conn.execute(
            f"CREATE TABLE t{n} (id serial PRIMARY KEY, name text NOT NULL UNIQUE,"
            f" parent int REFERENCES t{max(n - 1, 0)} (id), at timestamptz DEFAULT now(),"
            f" amount numeric(12,2) CHECK (amount > 0));"
            f"CREATE INDEX ix_t{n}_at ON t{n} (at)"
        )
    snap = take_snapshot(conn)
    assert len(snap.tables) == 50
    assert {f"public.ix_t{n}_at" for n in range(50)} <= set(snap.indexes)
