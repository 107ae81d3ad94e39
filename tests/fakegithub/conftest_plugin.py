"""Pytest fixtures for the fake GitHub; register with `pytest_plugins` (tests/conftest.py does).

Async style: pytest-asyncio in strict mode (it comes with pytest-aiohttp; `asyncio_mode` is not
set), so async fixtures are declared with `@pytest_asyncio.fixture` and async tests are marked
`@pytest.mark.asyncio`. The fake runs in the test's own event loop.

- `fake_github`: a started `FakeGitHub` (`.url`, `.app_id`, `.private_key_pem`); at teardown
  the test fails if any request broke GitHub's OpenAPI description (see `violations`; a test that
  provokes violations on purpose takes them with `pop_violations()`). Set
  `MIGSAFE_FAKE_GITHUB_DEBUG=1` to also validate the fake's own responses.
  `fake_github_in_thread`: the same for synchronous tests (it serves from its own thread).
- `seed_pull_request(fake, ...)` and `seed_org(fake, ...)`: a repository with files at a base
  commit and a pull request to a head commit; an organization with teams.

Tests needing the shared data (`../shared/github`) skip when it is absent.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from tests.fakegithub import require_shared_github_dir
from tests.fakegithub.server import FakeGitHub, Installation, Membership, Org, Pull, Repo

DEBUG_ENV = "MIGSAFE_FAKE_GITHUB_DEBUG"


@dataclass
class SeededPull:
    installation: Installation
    repo: Repo
    pull: Pull
    base_sha: str
    head_sha: str


def seed_pull_request(
    fake: FakeGitHub,
    full_name: str = "acme/shop",
    *,
    base_files: Mapping[str, bytes | str],
    head_files: Mapping[str, bytes | str | None],
    head_branch: str = "feature",
    author: str = "octocat",
    fork_owner: str | None = None,
    title: str = "Change the schema",
    private: bool = False,
) -> SeededPull:
    """A repository (with the app installed on its owner) holding `base_files` on its default
    branch, and an open pull request whose head commit applies `head_files` (None deletes a
    file) on top; from the fork `<fork_owner>/<name>` when `fork_owner` is given."""
    owner = full_name.split("/")[0]
    installation = next(
        (i for i in fake.installations.values() if i.account.login == owner), None
    ) or fake.add_installation(owner)
    repo = fake.repos.get(full_name) or fake.create_repo(full_name, private=private)
    base_sha = fake.commit(full_name, base_files, message="Base")
    source = full_name
    if fork_owner is not None:
        source = f"{fork_owner}/{repo.name}"
        fake.create_repo(source, owner_type="User", fork_of=full_name)
    head_sha = fake.commit(source, head_files, branch=head_branch, message=title, author=author)
    pull = fake.open_pull(
        full_name,
        head=head_branch,
        head_repo=source if fork_owner else None,
        user=author,
        title=title,
    )
    return SeededPull(installation, repo, pull, base_sha, head_sha)


def seed_org(
    fake: FakeGitHub, org: str, teams: Mapping[str, Mapping[str, str | Membership]]
) -> Org:
    """`org` with teams: slug -> {login: 'member' | 'maintainer' | Membership(role, state)}."""
    for slug, members in teams.items():
        fake.add_team(org, slug, members)
    return fake.orgs[org]


@pytest.fixture
def github_shared_dir() -> Path:
    """`../shared/github`, or skip the test."""
    return require_shared_github_dir()


@pytest_asyncio.fixture
async def fake_github(github_shared_dir: Path) -> AsyncIterator[FakeGitHub]:
    fake = FakeGitHub(github_shared_dir, validate_responses=os.environ.get(DEBUG_ENV) == "1")
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
    _fail_on_violations(fake)


@pytest.fixture
def fake_github_in_thread(github_shared_dir: Path) -> Iterator[FakeGitHub]:
    """`fake_github` for synchronous tests: it serves from an event loop in a thread of its own,
    so that what the test runs (a real `migsafe serve`, a blocking call) can talk to it. Read
    its state once they are done with it."""
    fake = FakeGitHub(github_shared_dir, validate_responses=os.environ.get(DEBUG_ENV) == "1")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake-github", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(fake.start(), loop).result(timeout=30)
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
    _fail_on_violations(fake)


def _fail_on_violations(fake: FakeGitHub) -> None:
    if fake.violations:
        listing = "\n".join(f"  - {v}" for v in fake.violations)
        pytest.fail(
            f"{len(fake.violations)} request(s) to the fake GitHub broke GitHub's OpenAPI "
            f"description:\n{listing}",
            pytrace=False,
        )
