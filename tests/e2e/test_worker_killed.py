"""A worker killed (SIGKILL) in the middle of a check: another worker takes the job over
once the dead one's heartbeat is stale, and the same check run completes."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from bot.sandbox.cluster import EmbeddedCluster
from tests.e2e.conftest import STALLED_AFTER_S, BotFactory, head_migration, seed_shop
from tests.e2e.services import SLOW, migsafe_process, sandbox_sleeping, service_env, wait_for
from tests.processes import kill_tree

pytestmark = pytest.mark.asyncio


async def test_a_check_survives_its_worker_being_killed(
    make_bot: BotFactory, pg_cluster: EmbeddedCluster, tmp_path: Path, backup_source: str
) -> None:
    bot = await make_bot(worker=False)
    seeded = seed_shop(bot.fake, head_migration(SLOW))
    log = tmp_path / "worker.log"
    env = service_env(bot.settings, MIGSAFE_WORKER_CONCURRENCY="1")
    with migsafe_process(["worker"], env, log) as process:
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
