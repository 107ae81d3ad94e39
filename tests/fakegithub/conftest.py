"""Fixtures of the fake's own tests: the fake in debug mode, and a client session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest_asyncio

from tests.fakegithub.server import FakeGitHub


@pytest_asyncio.fixture
async def fake(github_shared_dir: Path) -> AsyncIterator[FakeGitHub]:
    """The fake in debug mode: its own responses are validated too."""
    server = FakeGitHub(github_shared_dir, validate_responses=True)
    await server.start()
    yield server
    await server.stop()
    assert server.violations == [], "\n".join(server.violations)


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client
