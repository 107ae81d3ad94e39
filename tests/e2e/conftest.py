"""The GitHub App end to end: the real aiohttp server on 127.0.0.1, a real procrastinate
worker, the state database and the sandbox on one embedded PostgreSQL cluster, and the fake
GitHub (every request the bot makes validated against GitHub's OpenAPI description).

Deliveries are built from GitHub's real payload examples (`tests.fakegithub.payloads`) and
POSTed signed to /webhook; tests assert on the fake's recorded state and on the database.

`make_bot()` starts the web app (and, unless told otherwise, a worker in the same event
loop); `bot.settle()` waits until no job is queued or running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient

from bot import service
from bot.jobs import TASK_PURGE_REPORTS, TASK_RETRY_STALLED_JOBS, JobQueue
from bot.sandbox.cluster import EmbeddedCluster
from bot.service.check import check_run_name
from bot.service.connection import close_github_sessions
from bot.settings import Settings
from bot.store import db
from bot.webhooks.app import build_web_app
from tests.fakegithub import payloads
from tests.fakegithub.conftest_plugin import SeededPull, seed_org, seed_pull_request
from tests.fakegithub.server import CheckRun, FakeGitHub, Membership
from tests.statedb import query

SECRET = "e2e-webhook-secret"
REPO = "acme/shop"
ORG = "acme"
AUTHOR = "octocat"
VERSIONS = "migrations/versions/"
FIXTURES = Path(__file__).parent / "fixtures" / "shop"
STALLED_AFTER_S = 3.0  # short: the killed-worker test waits for it (heartbeat: 1 s)

Client = TestClient[Any, Any]


# -- the shop repository --------------------------------------------------------------------


def base_files() -> dict[str, bytes]:
    """The base branch: an Alembic project at 0002, the policy file, some app code."""
    root = FIXTURES / "base"
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def head_migration(name: str) -> dict[str, bytes]:
    """`{migrations/versions/<name>: its text}` for a head commit (fixtures/shop/heads)."""
    return {VERSIONS + name: (FIXTURES / "heads" / name).read_bytes()}


def line_of(name: str, needle: str) -> int:
    """The 1-based line of `needle` in head migration `name`."""
    text = (FIXTURES / "heads" / name).read_text(encoding="utf-8")
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def seed_teams(fake: FakeGitHub) -> None:
    """acme's approver teams: lead and the author in backend-leads (newcomer only invited),
    po in product-owners."""
    seed_org(
        fake,
        ORG,
        {
            "backend-leads": {
                "lead": "member",
                AUTHOR: "member",
                "newcomer": Membership(state="pending"),
            },
            "product-owners": {"po": "maintainer"},
        },
    )


def seed_shop(
    fake: FakeGitHub,
    head_files: Mapping[str, bytes | str | None],
    *,
    fork_owner: str | None = None,
    title: str = "Change the schema",
) -> SeededPull:
    """acme/shop with the app installed, its teams, and an open PR applying `head_files`."""
    seeded = seed_pull_request(
        fake,
        REPO,
        base_files=base_files(),
        head_files=head_files,
        author=AUTHOR,
        fork_owner=fork_owner,
        title=title,
    )
    seed_teams(fake)
    return seeded


# -- the operator's backup status source -------------------------------------------------------

_PGBACKREST = """#!{python}
# A stand-in for `pgbackrest info --output=json`: one stanza, a full backup 3 hours old.
import json, time
stop = int(time.time()) - 3 * 3600
print(json.dumps([{{"name": "shop", "status": {{"code": 0, "message": "ok"}},
    "backup": [{{"type": "full", "error": False,
                 "timestamp": {{"start": stop - 600, "stop": stop}}}}]}}]))
"""


@pytest.fixture
def backup_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """`MIGSAFE_BACKUP_STATUS_COMMAND=pgbackrest info --output=json`, answered by a script on
    PATH that reports a backup 3 hours old (a fresh backup: production may merge)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "pgbackrest"
    script.write_text(_PGBACKREST.format(python=sys.executable), encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    command = "pgbackrest info --output=json"
    monkeypatch.setenv("MIGSAFE_BACKUP_STATUS_COMMAND", command)
    return command


# -- the bot ---------------------------------------------------------------------------------


@dataclass
class Bot:
    """The App under test, with the fake GitHub it talks to."""

    fake: FakeGitHub
    client: Client
    queue: JobQueue
    settings: Settings
    conninfo: str
    worker: asyncio.Task[None] | None = None
    acknowledged: list[str] = field(default_factory=list)

    # -- deliveries -------------------------------------------------------------------------

    async def deliver(
        self,
        event: str,
        payload: Mapping[str, Any],
        *,
        delivery_id: str | None = None,
        secret: str = SECRET,
        drop_signature: bool = False,
    ) -> tuple[int, dict[str, Any]]:
        """POST one signed delivery to /webhook; (status, JSON answer)."""
        headers, body = payloads.delivery(event, payload, secret, delivery_id=delivery_id)
        if drop_signature:
            del headers["X-Hub-Signature-256"]
        response = await self.client.post("/webhook", data=body, headers=headers)
        answer: dict[str, Any] = await response.json()
        if response.status in (200, 202):
            self.acknowledged.append(headers["X-GitHub-Delivery"])
        return response.status, answer

    async def pull_request(
        self, action: str, seeded: SeededPull, *, settle: bool = True, **kwargs: Any
    ) -> None:
        """Deliver `pull_request.<action>` for the seeded PR (its state now), then settle."""
        payload = payloads.pull_request_event(
            self.fake, action, seeded.repo, seeded.pull, seeded.installation.id, **kwargs
        )
        status, answer = await self.deliver("pull_request", payload)
        assert status == 202, answer
        if settle:
            await self.settle()

    async def review(self, seeded: SeededPull, user: str, state: str) -> None:
        """`user` reviews the PR's current head (APPROVED, CHANGES_REQUESTED, ...)."""
        review = self.fake.add_review(REPO, seeded.pull.number, user, state)
        payload = payloads.review_event(
            self.fake, seeded.repo, seeded.pull, review, seeded.installation.id
        )
        status, answer = await self.deliver("pull_request_review", payload)
        assert status == 202, answer
        await self.settle()

    async def push(self, seeded: SeededPull, files: Mapping[str, bytes | str | None]) -> str:
        """A commit on the PR's branch, then `pull_request.synchronize`; the new head."""
        head = self.fake.commit(REPO, files, branch=seeded.pull.head_ref, message="Push")
        await self.pull_request("synchronize", seeded)
        return head

    # -- the worker -------------------------------------------------------------------------

    def start_worker(self) -> None:
        self.worker = asyncio.create_task(
            self.queue.run_worker(concurrency=2, install_signal_handlers=False),
            name="e2e-worker",
        )

    async def stop_worker(self) -> None:
        if self.worker is None:
            return
        self.worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.worker
        self.worker = None

    async def settle(self, timeout_s: float = 60.0) -> None:
        """Wait until no job is queued or running (retries scheduled later included)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.pending_jobs():
            if self.worker is not None and self.worker.done():
                self.worker.result()  # the worker died: show why
                raise AssertionError("the worker stopped")
            if loop.time() > deadline:
                raise AssertionError(f"jobs still pending after {timeout_s} s: {self.jobs()}")
            await asyncio.sleep(0.05)

    # -- the database -----------------------------------------------------------------------

    def query(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        return query(self.conninfo, statement, *params)

    def jobs(self) -> list[tuple[int, str, str]]:
        """(id, task, status) of every job but the periodic housekeeping ones."""
        rows = self.query(
            "SELECT id, task_name, status::text FROM procrastinate_jobs"
            " WHERE task_name <> ALL(%s) ORDER BY id",
            [TASK_RETRY_STALLED_JOBS, TASK_PURGE_REPORTS],
        )
        return [(int(i), str(t), str(s)) for i, t, s in rows]

    def pending_jobs(self) -> list[tuple[int, str, str]]:
        return [job for job in self.jobs() if job[2] in ("todo", "doing")]

    def failed_jobs(self) -> list[tuple[int, str, str]]:
        return [job for job in self.jobs() if job[2] != "succeeded"]

    def analyses(self, number: int) -> list[tuple[str, str | None, str, dict[str, Any]]]:
        """(head_sha, migration fingerprint, conclusion, report) of PR `number`, in order."""
        rows = self.query(
            "SELECT head_sha, migration_fingerprint, conclusion, report FROM analyses"
            " WHERE repo = %s AND number = %s ORDER BY id",
            REPO,
            number,
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    # -- the fake's state -------------------------------------------------------------------

    def check_runs(self, head_sha: str, name: str | None = None) -> list[CheckRun]:
        """The runs called `name` (default: the check's for base main) on `head_sha`."""
        name = name or check_run_name("main")
        return sorted(
            self.fake.check_runs(REPO, head_sha=head_sha, name=name), key=lambda run: run.id
        )

    def check_run(self, head_sha: str, name: str | None = None) -> CheckRun:
        """The only run called `name` on `head_sha`."""
        runs = self.check_runs(head_sha, name)
        assert len(runs) == 1, [(r.name, r.status, r.conclusion) for r in runs]
        return runs[0]

    def gate(self, head_sha: str, base: str = "main") -> CheckRun:
        """The latest `migsafe/approvals (<base>)` run on `head_sha`."""
        runs = self.check_runs(head_sha, f"migsafe/approvals ({base})")
        assert runs, f"no gate for {base} on {head_sha}"
        return runs[-1]


BotFactory = Callable[..., Awaitable[Bot]]


def app_settings(
    fake: FakeGitHub, state: str, sandbox: EmbeddedCluster, *, public_url: str | None = None
) -> Settings:
    """The App's settings against the fake GitHub, the test's state database and sandbox."""
    return Settings(
        app_id=fake.app_id,
        private_key=fake.private_key_pem,
        webhook_secret=SECRET,
        github_api_url=fake.url,
        database_url=state,
        sandbox_url=sandbox.conninfo(),
        public_url=public_url,
    )


@pytest_asyncio.fixture
async def make_bot(
    fake_github: FakeGitHub,
    state: str,
    pg_cluster: EmbeddedCluster,
    aiohttp_client: Any,
) -> AsyncIterator[BotFactory]:
    """`await make_bot(worker=True)`: the App against the fake (one per test)."""
    bots: list[Bot] = []
    pools = []

    async def make(*, worker: bool = True, public_url: str | None = None) -> Bot:
        settings = app_settings(fake_github, state, pg_cluster, public_url=public_url)
        pool = await db.open_pool(state, max_size=8)
        pools.append(pool)
        queue = JobQueue(
            state, handlers=service.handlers(), settings=settings, stalled_after_s=STALLED_AFTER_S
        )
        await queue.open(pool)
        app = build_web_app(webhook_secret=SECRET, queue=queue)
        client: Client = await aiohttp_client(app)
        bot = Bot(fake_github, client, queue, settings, state)
        bots.append(bot)
        if worker:
            bot.start_worker()
        return bot

    yield make
    for bot in bots:
        await bot.stop_worker()
        await bot.queue.close()
    for pool in pools:
        await pool.close()
    await close_github_sessions()


@pytest_asyncio.fixture
async def bot(make_bot: BotFactory) -> Bot:
    return await make_bot()


def summary_of(run: CheckRun) -> str:
    return str(run.output.get("summary") or "")


def dump(value: Any) -> str:
    """For assertion messages."""
    return json.dumps(value, indent=1, default=str)[:4000]
