"""migsafe's service processes as an operator starts them (`python -m bot.cli serve`,
`... worker`), configured only through their environment, for the end-to-end tests that
need real processes: one to kill, several sharing the state database."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg

from bot.sandbox.cluster import EmbeddedCluster
from bot.settings import Settings
from tests.processes import kill_tree

SLOW = "0003_slow_nickname.py"  # sleeps 2 s in the sandbox, twice (upgrade, re-upgrade)
ROOT = Path(__file__).resolve().parents[2]  # so that `-m bot.cli` is this checkout's


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The test's environment (PATH, the backup source...) plus the App's variables."""
    return {
        **os.environ,
        "MIGSAFE_APP_ID": str(settings.app_id),
        "MIGSAFE_PRIVATE_KEY": settings.private_key,
        "MIGSAFE_WEBHOOK_SECRET": settings.webhook_secret,
        "MIGSAFE_GITHUB_API_URL": settings.github_api_url,
        "DATABASE_URL": settings.database_url or "",
        "MIGSAFE_SANDBOX_URL": settings.sandbox_url or "",
        **extra,
    }


@contextmanager
def migsafe_process(
    args: Sequence[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """`migsafe <args>` with its output in `log`; killed with what it started at the end."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", *args],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            kill_tree(process.pid)
            process.wait(timeout=10)


async def wait_for(
    condition: Callable[[], object],
    timeout_s: float,
    what: str | Callable[[], str],
    *,
    every_s: float = 0.05,
) -> None:
    """Poll `condition` (it blocks the event loop, the fake GitHub's too: keep it short);
    `what` may be a function, to describe the state at the time out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")
        await asyncio.sleep(every_s)


def sandbox_sleeping(cluster: EmbeddedCluster, seconds: int = 2) -> bool:
    """The sandbox is running the SLOW migration (its `pg_sleep(2)`, or as many `seconds`): a
    check in the middle."""
    with psycopg.connect(cluster.conninfo(), autocommit=True) as connection:
        rows = connection.execute(
            "SELECT 1 FROM pg_stat_activity WHERE query LIKE %s AND state = 'active'",
            (f"%pg_sleep({seconds})%",),
        ).fetchall()
    return bool(rows)
