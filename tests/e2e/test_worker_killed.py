"""A worker killed (SIGKILL) in the middle of a check: another worker takes the job over
once the dead one's heartbeat is stale, and the same check run completes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg
import pytest

from bot.sandbox.cluster import EmbeddedCluster
from tests.e2e.conftest import STALLED_AFTER_S, Bot, BotFactory, head_migration, seed_shop

pytestmark = pytest.mark.asyncio

SLOW = "0003_slow_nickname.py"  # sleeps 2 s in the sandbox, twice (upgrade, re-upgrade)


@contextmanager
def worker_process(bot: Bot, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`migsafe worker`, configured through its environment as in production."""
    settings = bot.settings
    env = {
        **os.environ,
        "MIGSAFE_APP_ID": str(settings.app_id),
        "MIGSAFE_PRIVATE_KEY": settings.private_key,
        "MIGSAFE_WEBHOOK_SECRET": settings.webhook_secret,
        "MIGSAFE_GITHUB_API_URL": settings.github_api_url,
        "DATABASE_URL": settings.database_url or "",
        "MIGSAFE_SANDBOX_URL": settings.sandbox_url or "",
        "MIGSAFE_WORKER_CONCURRENCY": "1",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "worker"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            kill_tree(process.pid)
            process.wait(timeout=10)


def descendants(pid: int) -> list[int]:
    """The processes `pid` started, transitively (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                children.setdefault(int(stat[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL `pid`, then what it had started (the sandbox children it leaves orphaned)."""
    orphans = descendants(pid)
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    for child in orphans:
        with suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


def sandbox_sleeping(cluster: EmbeddedCluster) -> bool:
    with psycopg.connect(cluster.conninfo(), autocommit=True) as connection:
        rows = connection.execute(
            "SELECT 1 FROM pg_stat_activity WHERE query LIKE %s AND state = 'active'",
            ("%pg_sleep(2)%",),
        ).fetchall()
    return bool(rows)


async def wait_for(condition: object, timeout_s: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_a_check_survives_its_worker_being_killed(
    make_bot: BotFactory, pg_cluster: EmbeddedCluster, tmp_path: Path, backup_source: str
) -> None:
    bot = await make_bot(worker=False)
    seeded = seed_shop(bot.fake, head_migration(SLOW))
    log = tmp_path / "worker.log"
    with worker_process(bot, log) as process:
        await bot.pull_request("opened", seeded, settle=False)
        await wait_for(lambda: sandbox_sleeping(pg_cluster), 60, "the sandbox to run")
        [first_run] = bot.check_runs(seeded.head_sha)
        assert first_run.status == "in_progress"
        kill_tree(process.pid)
        process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    [(job_id, _, status)] = [j for j in bot.jobs() if j[1] == "migsafe.check_pull_request"]
    assert status == "doing"  # the dead worker's: nobody will finish it on their own

    await asyncio.sleep(STALLED_AFTER_S + 0.5)  # the dead worker's heartbeat goes stale
    bot.start_worker()
    await bot.settle(timeout_s=90)

    checks = [j for j in bot.jobs() if j[1] == "migsafe.check_pull_request"]
    assert checks == [(job_id, "migsafe.check_pull_request", "succeeded")]
    [run] = bot.check_runs(seeded.head_sha)  # the same run, taken over: none stuck
    assert run.id == first_run.id
    assert (run.status, run.conclusion) == ("completed", "neutral"), run.output  # a warning
    [(head, _, conclusion, report)] = bot.analyses(seeded.pull.number)
    assert (head, conclusion) == (seeded.head_sha, "neutral")
    assert report["sandbox"]["ran"] is True
    assert bot.gate(seeded.head_sha).conclusion == "success"  # nothing to approve, fresh backup
