"""seed_rows and table checksums on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from bot.sandbox.database import SandboxServer, create_sandbox
from bot.sandbox.seed import DataLoss, compare_checksums, seed_rows, table_checksums
from bot.sandbox.snapshot import take_snapshot


@pytest.fixture
def conn(sandbox_server: SandboxServer) -> Iterator[psycopg.Connection[Any]]:
    """An admin connection to a fresh sandbox database (dropped afterwards)."""
    with (
        create_sandbox(sandbox_server) as sandbox,
        psycopg.connect(sandbox.admin_conninfo, autocommit=True) as connection,
    ):
        yield connection


def rows(conn: psycopg.Connection[Any], query: str) -> list[tuple[Any, ...]]:
    return conn.execute(query.encode()).fetchall()


def test_foreign_key_chain_is_seeded_parents_first(conn: psycopg.Connection[Any]) -> None:
    # Created child first, so only a topological order can seed them.
    conn.execute(
        "CREATE TABLE grandparents (id uuid PRIMARY KEY, name varchar(3) NOT NULL UNIQUE);"
        "CREATE TABLE parents (id serial PRIMARY KEY,"
        "  grandparent_id uuid NOT NULL REFERENCES grandparents (id));"
        "CREATE TABLE children (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        "  parent_id int NOT NULL REFERENCES parents (id), born date NOT NULL,"
        "  at timestamptz NOT NULL, amount numeric(4,2) NOT NULL, blob bytea, ip inet,"
        "  doc jsonb NOT NULL, tags text[] NOT NULL, flag boolean NOT NULL);"
    )
    report = seed_rows(conn, take_snapshot(conn))

    assert report.failed == {}
    assert report.seeded == {"public.grandparents": 3, "public.parents": 3, "public.children": 3}
    orphans = rows(
        conn,
        "SELECT count(*) FROM children c JOIN parents p ON p.id = c.parent_id"
        " JOIN grandparents g ON g.id = p.grandparent_id",
    )
    assert orphans == [(3,)]
    assert len(rows(conn, "SELECT DISTINCT name FROM grandparents")) == 3


def test_unsatisfiable_check_is_noted_not_fatal(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        "CREATE TABLE codes (code text NOT NULL CHECK (code ~ '^[A-Z]{3}$'));"
        "CREATE TABLE plain (id int PRIMARY KEY);"
    )
    report = seed_rows(conn, take_snapshot(conn))

    assert report.seeded == {"public.plain": 3}
    assert set(report.failed) == {"public.codes"}
    assert 'violates check constraint "codes_code_check"' in report.failed["public.codes"]
    assert rows(conn, "SELECT count(*) FROM codes") == [(0,)]


def test_check_on_a_nullable_column_is_met_by_leaving_it_null(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute("CREATE TABLE items (id int PRIMARY KEY, status text CHECK (status IN ('a')))")
    report = seed_rows(conn, take_snapshot(conn))
    assert report.seeded == {"public.items": 3}
    assert rows(conn, "SELECT count(*) FROM items WHERE status IS NULL") == [(3,)]


def test_child_of_a_failed_parent_is_noted_too(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        "CREATE TABLE parents (id int PRIMARY KEY CHECK (id < 0));"
        "CREATE TABLE children (parent_id int NOT NULL REFERENCES parents (id));"
    )
    report = seed_rows(conn, take_snapshot(conn))
    assert set(report.failed) == {"public.parents", "public.children"}
    assert report.seeded == {}


def test_enum_column_gets_the_first_label_and_a_unique_one_distinct_labels(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute(
        "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');"
        "CREATE TABLE people (id int PRIMARY KEY, mood mood NOT NULL, badge mood UNIQUE)"
    )
    report = seed_rows(conn, take_snapshot(conn))
    assert report.seeded == {"public.people": 3}
    assert rows(conn, "SELECT DISTINCT mood::text FROM people") == [("sad",)]
    assert sorted(rows(conn, "SELECT badge::text FROM people")) == [("happy",), ("ok",), ("sad",)]


def test_unique_columns_get_distinct_values(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        "CREATE TABLE accounts (email varchar(2) NOT NULL UNIQUE, code char(1) UNIQUE,"
        "  n smallint UNIQUE, PRIMARY KEY (email, n))"
    )
    report = seed_rows(conn, take_snapshot(conn), rows_per_table=5)
    assert report.seeded == {"public.accounts": 5}
    assert rows(conn, "SELECT count(DISTINCT email), count(DISTINCT code) FROM accounts") == [
        (5, 5)
    ]


def test_alembic_version_and_partitions_are_not_seeded(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);"
        "CREATE TABLE events (at date NOT NULL) PARTITION BY RANGE (at);"
        "CREATE TABLE events_2024 PARTITION OF events"
        "  FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');"
    )
    report = seed_rows(conn, take_snapshot(conn))
    assert report.seeded == {"public.events": 3}
    assert rows(conn, "SELECT count(*) FROM alembic_version") == [(0,)]
    assert rows(conn, "SELECT count(*) FROM events_2024") == [(3,)]


def test_table_of_defaults_only_is_seeded(conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE TABLE ticks (id serial PRIMARY KEY, at timestamptz DEFAULT now())")
    assert seed_rows(conn, take_snapshot(conn)).seeded == {"public.ticks": 3}


# -- checksums ------------------------------------------------------------------------------


@pytest.fixture
def seeded(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    conn.execute(
        "CREATE TABLE customers (id serial PRIMARY KEY, email text NOT NULL);"
        "CREATE TABLE orders (id serial PRIMARY KEY, customer_id int REFERENCES customers,"
        "  note text);"
    )
    report = seed_rows(conn, take_snapshot(conn))
    assert report.seeded == {"public.customers": 3, "public.orders": 3}
    return conn


TABLES = ["public.customers", "public.orders"]


def test_checksums_are_equal_after_a_no_op(seeded: psycopg.Connection[Any]) -> None:
    before = table_checksums(seeded, TABLES)
    seeded.execute("ALTER TABLE orders ADD COLUMN extra int; ALTER TABLE orders DROP COLUMN extra")
    after = table_checksums(seeded, TABLES)
    assert before == after
    assert before["public.orders"].rows == 3
    assert compare_checksums(before, after) == []


def test_dropped_and_readded_column_loses_its_data(seeded: psycopg.Connection[Any]) -> None:
    before = table_checksums(seeded, TABLES)
    seeded.execute("ALTER TABLE orders DROP COLUMN note; ALTER TABLE orders ADD COLUMN note text")
    losses = compare_checksums(before, table_checksums(seeded, TABLES))
    assert losses == [DataLoss("public.orders", 3, 3, changed=True)]
    assert losses[0].describe() == (
        "table public.orders: the 3 seeded rows came back changed (a column's data was lost)"
    )


def test_deleted_rows_are_counted(seeded: psycopg.Connection[Any]) -> None:
    before = table_checksums(seeded, TABLES)
    seeded.execute("DELETE FROM orders WHERE id > 1")
    losses = compare_checksums(before, table_checksums(seeded, TABLES))
    assert losses == [DataLoss("public.orders", 3, 1, changed=False)]
    assert losses[0].rows_lost == 2
    assert losses[0].describe() == (
        "table public.orders: 2 of 3 seeded rows are gone after the rollback"
    )


def test_missing_table_loses_every_row(seeded: psycopg.Connection[Any]) -> None:
    before = table_checksums(seeded, TABLES)
    seeded.execute("DROP TABLE orders")
    after = table_checksums(seeded, TABLES)
    assert set(after) == {"public.customers"}
    losses = compare_checksums(before, after)
    assert losses == [DataLoss("public.orders", 3, 0, changed=False, missing=True)]
    assert losses[0].describe() == (
        "table public.orders is missing after the rollback: all 3 seeded rows lost"
    )
