"""One embedded PostgreSQL cluster for the whole test session (real server, no mocks)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.errors import UserError
from bot.sandbox.cluster import EmbeddedCluster, find_binaries
from bot.sandbox.database import SandboxServer


def _require_binaries() -> None:
    try:
        find_binaries()
    except UserError as error:
        pytest.skip(f"needs PostgreSQL server binaries: {error}")


@pytest.fixture(scope="session")
def embedded_cluster() -> Iterator[EmbeddedCluster]:
    _require_binaries()
    with EmbeddedCluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def sandbox_server(embedded_cluster: EmbeddedCluster) -> Iterator[SandboxServer]:
    server = SandboxServer(embedded_cluster.conninfo())
    yield server
    server.close()


@pytest.fixture
def require_binaries() -> None:
    """For tests that start clusters of their own."""
    _require_binaries()
