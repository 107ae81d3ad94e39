"""The App's state database for tests: one embedded cluster per test session, one database
per test module migrated by `migsafe db upgrade`'s own code, emptied before each test."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from bot.errors import UserError
from bot.sandbox.cluster import EmbeddedCluster, find_binaries
from bot.store import db

STATE_TABLES = (
    "deliveries",
    "pull_requests",
    "analyses",
    "analysis_gates",
    "sandbox_approvals",
    "procrastinate_events",
    "procrastinate_periodic_defers",
    "procrastinate_jobs",
    "procrastinate_workers",
)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[EmbeddedCluster]:
    """One cluster for the App's tests: state databases and sandboxes."""
    try:
        find_binaries()
    except UserError as error:
        pytest.skip(f"needs PostgreSQL server binaries: {error}")
    with EmbeddedCluster() as cluster:
        yield cluster


@pytest.fixture(scope="module")
def state_conninfo(pg_cluster: EmbeddedCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database for the module, with every migration applied."""
    module = re.sub(r"\W", "_", request.module.__name__.rsplit(".", 1)[-1])
    name = f"state_{module}_{secrets.token_hex(3)}"
    with psycopg.connect(pg_cluster.conninfo(), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    conninfo = pg_cluster.conninfo(dbname=name)
    db.upgrade(conninfo)
    yield conninfo
    with psycopg.connect(pg_cluster.conninfo(), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def state(state_conninfo: str) -> str:
    """The module's database, emptied: each test starts with no delivery and no job."""
    with psycopg.connect(state_conninfo, autocommit=True) as connection:
        tables = sql.SQL(", ").join(sql.Identifier(table) for table in STATE_TABLES)
        connection.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(tables))
    return state_conninfo


def query(conninfo: str, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(conninfo) as connection:
        return connection.execute(statement, params).fetchall()  # type: ignore[arg-type]
