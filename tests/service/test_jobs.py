"""The worker runs the real procrastinate tasks (with recording handlers): delivery →
job → handler; superseded heads; fork check suites; retries; jobs of a dead worker (and
not those of a stopping one)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from dataclasses import replace
from datetime import datetime
from typing import Any

import croniter
import pytest
from aiohttp.test_utils import TestClient

from bot.jobs import TASK_RETRY_STALLED_JOBS, JobQueue, PullRequestJob, ServiceContext, plan_check
from tests.service.conftest import Recorder, deliver, example
from tests.statedb import query

pytestmark = pytest.mark.asyncio

Client = TestClient[Any, Any]
HEAD = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
NEWER = "f" * 40


async def _work(queue: JobQueue) -> None:
    """Run a worker until the queue is empty."""
    await queue.run_worker(wait=False, concurrency=1, install_signal_handlers=False)


def _statuses(conninfo: str, task: str = "migsafe.check_pull_request") -> list[str]:
    rows = query(
        conninfo,
        "SELECT status::text FROM procrastinate_jobs WHERE task_name = %s ORDER BY id",
        task,
    )
    return [str(status) for (status,) in rows]


async def test_a_worker_runs_the_check_of_a_delivery(
    client: Client, queue: JobQueue, recorder: Recorder, state: str
) -> None:
    await deliver(client, "pull_request", example("pull_request.opened"), delivery_id="d-1")
    await _work(queue)
    assert recorder.calls == [
        (
            "check_pull_request",
            {
                "repo": "Codertocat/Hello-World",
                "number": 2,
                "head_sha": HEAD,
                "delivery_id": "d-1",
                "installation_id": 1,
                "trigger": "pull_request.opened",
            },
        )
    ]
    assert _statuses(state) == ["succeeded"]


async def test_every_task_reaches_its_handler(
    client: Client, queue: JobQueue, recorder: Recorder
) -> None:
    await deliver(client, "pull_request", example("pull_request.labeled"))
    await deliver(client, "installation", example("installation.created"))
    await deliver(client, "membership", example("membership.removed.with-installation"))
    comment = copy.deepcopy(example("issue_comment.created.with-installation"))
    comment["issue"]["pull_request"] = {"url": "https://api.github.com/repos/x/y/pulls/1"}
    comment["comment"]["body"] = "/migsafe rerun"
    await deliver(client, "issue_comment", comment)
    await _work(queue)
    assert sorted(recorder.names()) == [
        "evaluate_gate",
        "forget_membership",
        "record_installation",
        "rerun_command",
    ]


async def test_a_queued_check_of_an_older_head_is_superseded(
    client: Client, queue: JobQueue, recorder: Recorder, state: str
) -> None:
    older = example("pull_request.synchronize")
    newer = copy.deepcopy(older)
    newer["pull_request"]["head"]["sha"] = NEWER
    newer["pull_request"]["updated_at"] = "2019-05-15T15:30:00Z"
    await deliver(client, "pull_request", older)
    await deliver(client, "pull_request", newer)
    await _work(queue)
    assert [kwargs["head_sha"] for _, kwargs in recorder.calls] == [NEWER]
    assert _statuses(state) == ["succeeded", "succeeded"]


async def test_a_rerun_asked_for_an_old_head_after_the_push_still_runs(
    client: Client, queue: JobQueue, recorder: Recorder
) -> None:
    newer = copy.deepcopy(example("pull_request.synchronize"))
    newer["pull_request"]["head"]["sha"] = NEWER
    await deliver(client, "pull_request", newer)
    await _work(queue)
    rerun = copy.deepcopy(example("check_suite.rerequested"))
    rerun["check_suite"]["head_sha"] = HEAD  # the older commit, asked for explicitly
    await deliver(client, "check_suite", rerun)
    await _work(queue)
    assert [kwargs["head_sha"] for _, kwargs in recorder.calls] == [NEWER, HEAD]


async def test_a_fork_check_suite_finds_its_pull_requests_by_head_sha(
    client: Client, queue: JobQueue, recorder: Recorder, state: str
) -> None:
    payload = copy.deepcopy(example("check_suite.rerequested"))
    payload["check_suite"]["pull_requests"] = []  # a fork's names none
    head_sha = payload["check_suite"]["head_sha"]
    recorder.pull_requests_by_sha[head_sha] = [7, 9]
    await deliver(client, "check_suite", payload)
    await _work(queue)
    checked = [(name, kwargs.get("number")) for name, kwargs in recorder.calls]
    assert checked == [
        ("pull_requests_for_commit", None),
        ("check_pull_request", 7),
        ("check_pull_request", 9),
    ]
    locks = query(state, "SELECT lock FROM procrastinate_jobs WHERE args->>'number' IS NOT NULL")
    assert {lock for (lock,) in locks} == {"Codertocat/Hello-World#7", "Codertocat/Hello-World#9"}


async def test_a_fork_check_suite_uses_known_heads_before_asking_github(
    client: Client, queue: JobQueue, recorder: Recorder
) -> None:
    opened = copy.deepcopy(example("pull_request.opened"))
    suite = copy.deepcopy(example("check_suite.rerequested"))
    suite["check_suite"]["pull_requests"] = []
    opened["pull_request"]["head"]["sha"] = suite["check_suite"]["head_sha"]
    await deliver(client, "pull_request", opened)
    await deliver(client, "check_suite", suite)
    await _work(queue)
    assert "pull_requests_for_commit" not in recorder.names()
    assert {kwargs["number"] for _, kwargs in recorder.calls} == {2}


async def test_a_failing_check_is_retried_later_with_backoff(
    client: Client, queue: JobQueue, recorder: Recorder, state: str
) -> None:
    recorder.failures_left = 1
    await deliver(client, "pull_request", example("pull_request.opened"))
    await _work(queue)
    rows = query(
        state,
        "SELECT status::text, args->'attempt', lock, queueing_lock,"
        " extract(epoch FROM scheduled_at - now())"
        " FROM procrastinate_jobs WHERE task_name = 'migsafe.check_pull_request' ORDER BY id",
    )
    [failed, retry] = rows
    assert (failed[0], failed[1], retry[0], retry[1]) == ("failed", None, "todo", 1)
    assert retry[2:4] == failed[2:4]  # the same locks
    assert 0 < float(retry[4]) <= 3  # 3**1 s after the first failure


async def test_a_failure_while_an_identical_check_waits_leaves_nothing_stuck(
    client: Client, queue: JobQueue, recorder: Recorder, state: str
) -> None:
    """procrastinate's in-place retry would collide with the queued twin's queueing lock
    and leave the failed job in `doing`, holding the PR's lock: the twin takes over."""
    payload = example("pull_request.opened")

    async def fail_once_the_twin_is_queued(ctx: Any, **kwargs: Any) -> None:
        recorder.calls.append(("check_pull_request", kwargs))
        if len(recorder.calls) == 1:
            await deliver(client, "pull_request", payload | {"action": "reopened"})
            raise RuntimeError("GitHub answered 502")

    queue.handlers = replace(queue.handlers, check_pull_request=fail_once_the_twin_is_queued)
    await deliver(client, "pull_request", payload)
    await _work(queue)
    assert _statuses(state) == ["failed", "succeeded"]
    assert [kwargs["trigger"] for _, kwargs in recorder.calls] == [
        "pull_request.opened",
        "pull_request.reopened",
    ]


async def test_a_worker_starting_up_re_queues_the_jobs_of_dead_workers(
    client: Client, queue: JobQueue, recorder: Recorder, state: str
) -> None:
    await deliver(client, "pull_request", example("pull_request.opened"))
    _take_with_a_dead_worker(state)
    await _work(queue)
    assert recorder.names() == ["check_pull_request"]
    assert _statuses(state) == ["succeeded"]


def _take_with_a_dead_worker(state: str) -> None:
    """A worker took the check, then died: its heartbeat stopped a minute ago."""
    [(dead_worker,)] = query(
        state,
        "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '1 minute')"
        " RETURNING id",
    )
    query(
        state,
        "UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s"
        " WHERE task_name = 'migsafe.check_pull_request' AND status = 'todo' RETURNING id",
        dead_worker,
    )


async def test_the_running_job_of_a_dead_worker_is_queued_again_and_completes(
    client: Client, queue: JobQueue, recorder: Recorder, state: str
) -> None:
    await deliver(client, "pull_request", example("pull_request.opened"))
    _take_with_a_dead_worker(state)
    assert await queue.retry_stalled_jobs() == 1
    assert _statuses(state) == ["todo"]
    await _work(queue)
    assert recorder.names() == ["check_pull_request"]
    assert _statuses(state) == ["succeeded"]


async def test_a_stopping_worker_is_not_dead_while_its_check_runs(
    client: Client, queue: JobQueue, recorder: Recorder, state: str
) -> None:
    """A graceful stop (SIGTERM) waits for the running check: procrastinate stops its own
    heartbeat at once, the job beats on, so the pass for dead workers leaves the check."""
    stall_s = 1.5
    started, release = asyncio.Event(), asyncio.Event()

    async def long_check(ctx: ServiceContext, **kwargs: Any) -> None:
        started.set()
        await release.wait()

    handlers = replace(recorder.handlers(), check_pull_request=long_check)
    stopping = JobQueue(state, handlers=handlers, stalled_after_s=stall_s)
    await stopping.open(queue.pool)
    await deliver(client, "pull_request", example("pull_request.opened"))
    worker = asyncio.create_task(stopping.run_worker(concurrency=1, install_signal_handlers=False))
    await asyncio.wait_for(started.wait(), 30)
    worker.cancel()  # procrastinate's graceful stop, as on SIGTERM: it waits for the check
    await asyncio.sleep(2 * stall_s)
    assert not worker.done()
    assert await stopping.retry_stalled_jobs() == 0
    assert _statuses(state) == ["doing"]
    release.set()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(worker, 30)
    assert _statuses(state) == ["succeeded"]
    await stopping.close()


async def test_a_stalled_job_with_a_queued_twin_is_closed_and_the_twin_runs(
    client: Client, queue: JobQueue, recorder: Recorder, state: str
) -> None:
    payload = example("pull_request.opened")
    await deliver(client, "pull_request", payload)
    _take_with_a_dead_worker(state)
    await deliver(client, "pull_request", payload | {"action": "reopened"})  # the twin
    assert await queue.retry_stalled_jobs() == 1
    await _work(queue)
    assert [kwargs["trigger"] for _, kwargs in recorder.calls] == ["pull_request.reopened"]
    assert _statuses(state) == ["failed", "succeeded"]


@pytest.mark.parametrize(
    ("stalled_after_s", "every_s"), [(30.0, 60), (3.0, 6), (5.0, 10), (120.0, 60)]
)
async def test_dead_workers_are_looked_for_every_two_stall_timeouts_at_most_a_minute(
    stalled_after_s: float, every_s: int
) -> None:
    queue = JobQueue(
        "postgresql://unused@localhost/unused",
        handlers=Recorder().handlers(),
        stalled_after_s=stalled_after_s,
    )
    periodic = queue.app.periodic_registry.periodic_tasks
    cron = periodic[("migsafe.retry_stalled_jobs", "retry-stalled")].cron
    ticks = croniter.croniter(cron, datetime(2026, 1, 1, 0, 0, 30))
    first, second = ticks.get_next(datetime), ticks.get_next(datetime)
    assert (second - first).total_seconds() == every_s


async def test_the_pass_for_dead_workers_runs_before_the_checks_queued_ahead_of_it(
    queue: JobQueue, recorder: Recorder, state: str
) -> None:
    """A busy queue must not delay the re-queueing of a dead worker's check."""
    checks = [
        plan_check(
            PullRequestJob(
                repo="acme/shop",
                number=number,
                head_sha=HEAD,
                delivery_id=f"d-{number}",
                installation_id=1,
                trigger="pull_request.opened",
            )
        )
        for number in (1, 2, 3)
    ]
    async with queue.pool.connection() as connection, connection.transaction():
        await queue.defer_all(connection, checks)
    await queue.app.tasks[TASK_RETRY_STALLED_JOBS].defer_async(timestamp=0)
    await _work(queue)
    started = query(
        state,
        "SELECT j.task_name FROM procrastinate_events e JOIN procrastinate_jobs j"
        " ON j.id = e.job_id WHERE e.type = 'started' ORDER BY e.id",
    )
    assert [task for (task,) in started] == [TASK_RETRY_STALLED_JOBS] + 3 * [
        "migsafe.check_pull_request"
    ]
    assert recorder.names() == 3 * ["check_pull_request"]
