"""Shared set-up for the GitHub client tests: the fake GitHub with one installed repository."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp

from bot.github.auth import AppCredentials, InstallationTokens
from bot.github.client import ApiMetrics, GitHub, InstallationAPI, RetryPolicy
from tests.fakegithub.server import FakeGitHub

ORG = "octo-org"
REPO = f"{ORG}/shop"
INSTALLATION = 77
POLICY = ".github/migsafe.yml"
BASE_POLICY = "environment: production\n"
MIGRATION = "migrations/versions/0002_drop_legacy.py"
MIGRATION_SOURCE = (
    '"""drop legacy"""\n'
    "from alembic import op\n"
    "\n"
    "revision = '0002'\n"
    "down_revision = '0001'\n"
    "\n"
    "\n"
    "def upgrade():\n"
    "    op.drop_column('orders', 'legacy_ref')\n"
    "    op.create_index('ix_orders_status', 'orders', ['status'])\n"
)
FAST = RetryPolicy(backoff_base_s=0.01, backoff_cap_s=0.05, max_wait_s=5.0)


@dataclass
class World:
    fake: FakeGitHub
    github: GitHub
    tokens: InstallationTokens
    base_sha: str
    head_sha: str
    number: int

    def api(self) -> InstallationAPI:
        return self.github.installation(INSTALLATION)


def seed(
    fake: FakeGitHub, extra_head_files: dict[str, bytes | str] | None = None
) -> tuple[str, str, int]:
    """main has the policy and 0001; branch `feature` adds 0002 and loosens the policy."""
    fake.add_installation(ORG, installation_id=INSTALLATION)
    fake.create_repo(REPO)
    base = fake.commit(
        REPO,
        {POLICY: BASE_POLICY, "migrations/versions/0001_init.py": "revision = '0001'\n"},
    )
    head = fake.commit(
        REPO,
        {MIGRATION: MIGRATION_SOURCE, POLICY: "environment: local\n", **(extra_head_files or {})},
        branch="feature",
    )
    pull = fake.open_pull(REPO, head="feature", user="dev")
    return base, head, pull.number


@asynccontextmanager
async def world(
    *,
    retry: RetryPolicy = FAST,
    metrics: ApiMetrics | None = None,
    extra_head_files: dict[str, bytes | str] | None = None,
) -> AsyncIterator[World]:
    """A started fake GitHub, seeded, and a client for it; fails on any invalid request."""
    fake = FakeGitHub()
    await fake.start()
    try:
        base, head, number = seed(fake, extra_head_files)
        tokens = InstallationTokens()
        async with aiohttp.ClientSession() as session:
            github = GitHub(
                session,
                api_url=fake.url,
                credentials=AppCredentials(str(fake.app_id), fake.private_key_pem),
                tokens=tokens,
                metrics=metrics,
                retry=retry,
            )
            yield World(fake, github, tokens, base, head, number)
        assert fake.violations == [], fake.violations
    finally:
        await fake.stop()
