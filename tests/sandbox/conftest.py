"""One embedded PostgreSQL cluster for the whole test session (real server, no mocks)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """pytest's own, but outside its private base folder: where the tests run as root, the
    contained children run as nobody (if it can run the interpreter) and must traverse it."""
    with tempfile.TemporaryDirectory(prefix="migsafe-test-") as folder:
        Path(folder).chmod(0o711)
        yield Path(folder)
