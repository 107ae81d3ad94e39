"""A worker killed (SIGKILL) in the middle of a check: another worker takes the job over
once the dead one's heartbeat is stale, and the same check run completes. A worker stopped
(SIGTERM) in the middle of a check finishes it, and no other worker takes it over."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from bot.sandbox.cluster import EmbeddedCluster
from tests.e2e.conftest import STALLED_AFTER_S, Bot, BotFactory, head_migration, seed_shop
from tests.e2e.services import SLOW, migsafe_process, sandbox_sleeping, service_env, wait_for
from tests.processes import kill_tree

pytestmark = pytest.mark.asyncio

CHECK = "migsafe.check_pull_request"
LONG_SLEEP_S = 6  # twice (upgrade, re-upgrade): the check outlasts a stall timeout of 3 s


def check_jobs(bot: Bot) -> list[tuple[int, str, int, int | None]]:
    """(id, status, attempts, worker id) of every check job."""
    rows = bot.query(
        "SELECT id, status::text, attempts, worker_id FROM procrastinate_jobs"
        " WHERE task_name = %s ORDER BY id",
        CHECK,
    )
    return [(int(i), str(s), int(a), w) for i, s, a, w in rows]


def long_migration() -> dict[str, bytes]:
    """SLOW, sleeping LONG_SLEEP_S instead of 2 s."""
    return {
        path: text.replace(b"pg_sleep(2)", f"pg_sleep({LONG_SLEEP_S})".encode())
        for path, text in head_migration(SLOW).items()
    }


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


async def test_a_worker_stopped_mid_check_finishes_it_and_no_other_worker_runs_it_again(
    make_bot: BotFactory, pg_cluster: EmbeddedCluster, tmp_path: Path, backup_source: str
) -> None:
    """A rolling update sends SIGTERM: the worker takes no new job and drains its running
    check; it stays alive for the other workers meanwhile (heartbeat), so their passes for
    dead workers leave the check alone: one job run once, one check run completed once."""
    bot = await make_bot(worker=False)
    seeded = seed_shop(bot.fake, long_migration())
    log = tmp_path / "worker.log"
    stalled_s = str(int(STALLED_AFTER_S))  # the fleet's: the other worker (`bot`) has it too
    env = service_env(
        bot.settings, MIGSAFE_WORKER_CONCURRENCY="1", MIGSAFE_STALLED_WORKER_SECONDS=stalled_s
    )
    with migsafe_process(["worker"], env, log) as process:
        await bot.pull_request("opened", seeded, settle=False)
        await wait_for(lambda: sandbox_sleeping(pg_cluster, LONG_SLEEP_S), 60, "the sandbox to run")
        [taken] = check_jobs(bot)  # (id, status, attempts, worker id)
        process.send_signal(signal.SIGTERM)  # the process only, as Kubernetes signals PID 1
        bot.start_worker()  # another: it looks for dead workers at start-up and periodically
        await asyncio.sleep(STALLED_AFTER_S + 1.5)  # a dead worker's heartbeat is stale by now
        assert await bot.queue.retry_stalled_jobs() == 0
        assert process.poll() is None, log.read_text()[-3000:]  # still working on the check
        assert check_jobs(bot) == [taken]  # still the stopping worker's, never re-queued
        # Polled: a blocking wait would stop the fake GitHub, in this event loop, too.
        await wait_for(lambda: process.poll() is not None, 60, "the stopped worker to exit")
        assert process.returncode == 0, log.read_text()[-3000:]
    await bot.settle(timeout_s=60)

    [(job_id, status, attempts, _)] = check_jobs(bot)
    assert (job_id, status, attempts) == (taken[0], "succeeded", 1)  # run once
    [run] = bot.check_runs(seeded.head_sha)
    assert (run.status, run.conclusion) == ("completed", "neutral"), run.output
    completions = [
        request
        for request in bot.fake.requests_to("PATCH", "checks/update")
        if request.path.endswith(f"/{run.id}") and request.json.get("status") == "completed"
    ]
    assert len(completions) == 1  # one writer of the result
    [(head, _, conclusion, report)] = bot.analyses(seeded.pull.number)
    assert (head, conclusion) == (seeded.head_sha, "neutral")
    assert report["sandbox"]["ran"] is True
