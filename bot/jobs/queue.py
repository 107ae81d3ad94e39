"""The durable job queue: procrastinate on the bot's PostgreSQL.

Over 400 lines: deferring, retrying and the worker are one mechanism around one App.

What a webhook decided is a `PlannedJob` (task name, JSON arguments, locks); the webhook
handler defers it on its own connection, in the same transaction as the delivery row, so
an accepted delivery is never lost. Guarantees, all procrastinate's own:

- retries with exponential backoff: procrastinate's `RETRY` for the tasks without a
  queueing lock; for those with one (check, gate, rerun) a failed job defers its own
  successor (`attempt` + 1, scheduled 3**attempt s later) under the same locks, because
  procrastinate's in-place retry would collide with an identical job queued meanwhile
  (unique queueing lock) and leave the failed job stuck in `doing`. An identical job
  already queued takes over the retry;
- `lock = "{repo}#{number}"`: at most one job runs per pull request at a time;
- `queueing_lock`: the same check is never queued twice (a check suite and a push for
  the same commit make one job); a newer push gets its own job, and the queued one for
  the older head exits as superseded when it starts;
- jobs of a worker that died (no heartbeat for `stalled_after_s`, 30 s by default:
  MIGSAFE_STALLED_WORKER_SECONDS) are put back in the queue, for any other worker sharing
  the database: at worker start-up and every `stalled_after_s * 2` seconds, at most a
  minute (`retry_stalled_jobs`: a periodic task, run by one worker of the fleet ahead of
  the queued checks). A worker asked to stop (SIGTERM) finishes its running jobs first and
  is not dead meanwhile: each running job beats its worker's heartbeat (`bot.jobs.alive`).

Task bodies call a `Handlers` registry (the service's are `bot.service.handlers()`), so
tests run the real tasks with handlers of their own instead of patching modules.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import procrastinate
import psycopg
from procrastinate.exceptions import AlreadyEnqueued, UniqueViolation
from procrastinate.jobs import Status
from psycopg_pool import AsyncConnectionPool

from bot import metrics
from bot.jobs.alive import keep_worker_alive
from bot.jobs.log import log_job_failure
from bot.jobs.plan import (
    TASK_CHECK_PULL_REQUEST,
    TASK_EVALUATE_GATE,
    TASK_FORGET_MEMBERSHIP,
    TASK_PURGE_REPORTS,
    TASK_RECORD_INSTALLATION,
    TASK_RERUN_COMMAND,
    TASK_RETRY_STALLED_JOBS,
    PlannedJob,
    PullRequestJob,
    plan_check,
)
from bot.service_logging import one_line_cause
from bot.settings import DEFAULT_REPORT_RETENTION_DAYS as DEFAULT_RETENTION_DAYS
from bot.settings import DEFAULT_STALLED_WORKER_SECONDS, Settings
from bot.store import db
from bot.store.pages import purge_expired_reports

logger = logging.getLogger("migsafe.jobs")

PURGE_REPORTS_CRON = "17 3 * * *"  # daily, off the hour

# Waits 3, 9, 27, 81, 243 s: rides out a GitHub incident of several minutes.
MAX_ATTEMPTS = 6
BACKOFF_BASE_S = 3
RETRY = procrastinate.RetryStrategy(max_attempts=MAX_ATTEMPTS, exponential_wait=BACKOFF_BASE_S)
STALLED_AFTER_S = float(DEFAULT_STALLED_WORKER_SECONDS)  # no heartbeat this long: dead
HEARTBEAT_S = 10.0  # procrastinate's default; beats faster when `stalled_after_s` is short
# Ahead of the checks (priority 0): a dead worker's check must not wait for the pass that
# re-queues it behind the whole queue; it waits only for a worker's next free slot.
RETRY_STALLED_PRIORITY = 10
DEFER_ATTEMPTS = 3

Handler = Callable[..., Awaitable[None]]


class QueueingLockContended(Exception):
    """An identical job kept starting and finishing under us: the job could not be queued."""


Lookup = Callable[..., Awaitable[list[int]]]


# -- handlers and their context -----------------------------------------------------------------


@dataclass(frozen=True)
class Handlers:
    """What the tasks do; each is `async def name(ctx: ServiceContext, **job_kwargs)`."""

    check_pull_request: Handler
    pull_requests_for_commit: Lookup
    evaluate_gate: Handler
    rerun_command: Handler
    forget_membership: Handler
    record_installation: Handler


@dataclass(frozen=True)
class ServiceContext:
    """Given to every handler: the queue (to defer follow-up jobs), the pool, the job."""

    queue: JobQueue
    job_id: int | None
    attempts: int
    task: str

    @property
    def pool(self) -> AsyncConnectionPool:
        return self.queue.pool

    @property
    def settings(self) -> Settings | None:
        return self.queue.settings

    async def defer(self, job: PlannedJob) -> int:
        """Defer a follow-up job in its own transaction (e.g. rerun_command → a check)."""
        async with self.pool.connection() as connection, connection.transaction():
            return await self.queue.defer(connection, job)

    async def superseded(self, *, repo: str, number: int, head_sha: str, since: str) -> bool:
        """For long checks to ask between stages; `since` is the job's delivery id."""
        return await self.queue.superseded(
            repo=repo, number=number, head_sha=head_sha, delivery_id=since
        )


# -- the queue ---------------------------------------------------------------------------


@dataclass
class JobQueue:
    """A procrastinate App with migsafe's tasks, bound to one pool and one handler set."""

    conninfo: str
    handlers: Handlers
    settings: Settings | None = None
    stalled_after_s: float = STALLED_AFTER_S
    app: procrastinate.App = field(init=False)
    _pool: AsyncConnectionPool | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.app = procrastinate.App(
            connector=procrastinate.PsycopgConnector(conninfo=self.conninfo)
        )
        self._register_tasks()

    @property
    def pool(self) -> AsyncConnectionPool:
        if self._pool is None:
            raise RuntimeError("the job queue is not open")
        return self._pool

    async def open(self, pool: AsyncConnectionPool) -> None:
        """Share the process's pool (procrastinate then leaves closing it to us)."""
        await self.app.open_async(pool)
        self._pool = pool

    async def close(self) -> None:
        await self.app.close_async()
        self._pool = None

    # -- deferring ----------------------------------------------------------------------------

    async def defer(self, connection: psycopg.AsyncConnection[Any], job: PlannedJob) -> int:
        """Insert the job on `connection`, inside the caller's transaction (a savepoint, so a
        refused queueing lock does not abort it). Returns the job's id, or the id of the
        identical job already waiting."""
        task = self.app.tasks[job.task]
        for _ in range(DEFER_ATTEMPTS):
            try:
                async with connection.transaction():
                    deferrer = task.configure(
                        lock=job.lock,
                        queueing_lock=job.queueing_lock,
                        connection=connection,
                        schedule_in=({"seconds": job.schedule_in_s} if job.schedule_in_s else None),
                    )
                    return await deferrer.defer_async(**job.kwargs)
            except AlreadyEnqueued:
                waiting = await _waiting_job_id(connection, job.queueing_lock)
                if waiting is not None:
                    return waiting
                # It started between our insert and the look-up: queue this one after all.
        # Raise: the caller's transaction rolls back (a webhook is answered 503 and GitHub
        # redelivers) rather than accepting work for which no job exists.
        raise QueueingLockContended(f"could not defer {job.task} ({job.lock}): lock contended")

    async def defer_all(
        self, connection: psycopg.AsyncConnection[Any], jobs: Iterable[PlannedJob]
    ) -> list[int]:
        return [await self.defer(connection, job) for job in jobs]

    # -- superseded ---------------------------------------------------------------------------

    async def superseded(self, *, repo: str, number: int, head_sha: str, delivery_id: str) -> bool:
        async with self.pool.connection() as connection:
            requested_at = await db.delivery_received_at(connection, delivery_id)
            return await db.is_superseded(
                connection, repo=repo, number=number, head_sha=head_sha, requested_at=requested_at
            )

    # -- worker ---------------------------------------------------------------------------------

    async def run_worker(
        self,
        *,
        concurrency: int = 4,
        wait: bool = True,
        name: str = "migsafe-worker",
        install_signal_handlers: bool = True,
    ) -> None:
        """Work until stopped (`wait=False`: until the queue is empty). Jobs of dead workers
        are re-queued first, then every minute by the periodic task."""
        await self.retry_stalled_jobs()
        # A live worker must beat well within `stalled_after_s`, or it looks dead.
        heartbeat_s = min(HEARTBEAT_S, self.stalled_after_s / 3)
        await self.app.run_worker_async(
            concurrency=concurrency,
            wait=wait,
            name=name,
            install_signal_handlers=install_signal_handlers,
            stalled_worker_timeout=self.stalled_after_s,
            update_heartbeat_interval=heartbeat_s,
            # procrastinate's own heartbeat stops when a drain starts: the jobs beat it on.
            worker_middleware=[keep_worker_alive(heartbeat_s)],
        )

    async def retry_stalled_jobs(self) -> int:
        """Put back in the queue the running jobs of workers without a recent heartbeat."""
        manager = self.app.job_manager
        stalled = list(await manager.get_stalled_jobs(seconds_since_heartbeat=self.stalled_after_s))
        for job in stalled:
            assert job.id is not None
            try:
                await manager.retry_job(job)
                logger.warning("re-queued stalled job %s (%s)", job.id, job.task_name)
            except UniqueViolation:
                # An identical job is queued (same queueing lock): it does the work.
                await manager.finish_job_by_id_async(job.id, Status.FAILED, delete_job=False)
                logger.warning("stalled job %s superseded by a queued twin", job.id)
        return len(stalled)

    # -- tasks ------------------------------------------------------------------------------------

    def _register_tasks(self) -> None:
        task = self.app.task
        # These three have queueing locks: they retry by deferring a successor (see above).
        task(name=TASK_CHECK_PULL_REQUEST, pass_context=True)(self._check)
        task(name=TASK_EVALUATE_GATE, pass_context=True)(self._evaluate_gate)
        task(name=TASK_RERUN_COMMAND, pass_context=True)(self._rerun_command)
        task(name=TASK_FORGET_MEMBERSHIP, pass_context=True, retry=RETRY)(self._forget)
        task(name=TASK_RECORD_INSTALLATION, pass_context=True, retry=RETRY)(self._installation)
        retry_stalled = task(
            name=TASK_RETRY_STALLED_JOBS,
            queueing_lock=TASK_RETRY_STALLED_JOBS,
            priority=RETRY_STALLED_PRIORITY,
        )(self._retry_stalled_periodically)
        self.app.periodic(
            cron=retry_stalled_cron(self.stalled_after_s), periodic_id="retry-stalled"
        )(retry_stalled)
        purge = task(name=TASK_PURGE_REPORTS, queueing_lock=TASK_PURGE_REPORTS)(
            self._purge_reports_periodically
        )
        self.app.periodic(cron=PURGE_REPORTS_CRON, periodic_id="purge-reports")(purge)

    def _context(self, job_context: procrastinate.JobContext) -> ServiceContext:
        job = job_context.job
        attempts = job.attempts + _attempt_of(job.task_kwargs)
        return ServiceContext(queue=self, job_id=job.id, attempts=attempts, task=job.task_name)

    async def _retrying(
        self, job_context: procrastinate.JobContext, run: Callable[[], Awaitable[None]]
    ) -> None:
        """Run; on failure defer the successor (same locks, backoff) and re-raise, so this
        job ends `failed` with its error while the successor waits its turn. The failure is
        logged in one line (`log_job_failure`)."""
        try:
            await run()
        except Exception as error:
            job = job_context.job
            attempt = _attempt_of(job.task_kwargs) + 1
            if attempt >= MAX_ATTEMPTS:
                log_job_failure(job, error, f"not retried (attempt {attempt} of {MAX_ATTEMPTS})")
                raise
            delay = BACKOFF_BASE_S**attempt
            successor = PlannedJob(
                job.task_name,
                {**job.task_kwargs, "attempt": attempt},
                job.lock,
                job.queueing_lock,
                schedule_in_s=delay,
            )
            try:
                async with self.pool.connection() as connection, connection.transaction():
                    successor_id = await self.defer(connection, successor)
            except Exception as defer_error:
                cause = one_line_cause(defer_error)
                log_job_failure(job, error, f"NOT retried: its retry could not be queued ({cause})")
                raise
            log_job_failure(
                job,
                error,
                f"retried in {delay} s as job {successor_id} "
                f"(attempt {attempt + 1} of {MAX_ATTEMPTS})",
            )
            raise

    async def _retrying_in_place(
        self, job_context: procrastinate.JobContext, run: Callable[[], Awaitable[None]]
    ) -> None:
        """For the tasks procrastinate retries itself (`RETRY`): log the failure in one line
        and re-raise."""
        try:
            await run()
        except Exception as error:
            job = job_context.job
            decision = RETRY.get_retry_decision(exception=error, job=job)
            done = job.attempts + 1
            if decision is None:
                log_job_failure(job, error, f"not retried (attempt {done} of {MAX_ATTEMPTS})")
            else:
                log_job_failure(job, error, f"retried (attempt {done + 1} of {MAX_ATTEMPTS})")
            raise

    async def _check(
        self, job_context: procrastinate.JobContext, /, attempt: int = 0, **kwargs: Any
    ) -> None:
        ctx = self._context(job_context)
        pull = PullRequestJob.from_job(kwargs)
        await self._retrying(job_context, lambda: self._check_now(ctx, pull))

    async def _check_now(self, ctx: ServiceContext, pull: PullRequestJob) -> None:
        if pull.number is None:
            await self._check_each_pull_request(ctx, pull)
            return
        if await self.superseded(
            repo=pull.repo, number=pull.number, head_sha=pull.head_sha, delivery_id=pull.delivery_id
        ):
            logger.info("%s: check of %s superseded by a newer head", pull.name, pull.head_sha)
            return
        started = time.monotonic()
        try:
            await self.handlers.check_pull_request(ctx, **pull.job_kwargs())
        finally:
            metrics.observe_check_duration(time.monotonic() - started)

    async def _check_each_pull_request(self, ctx: ServiceContext, pull: PullRequestJob) -> None:
        async with self.pool.connection() as connection:
            numbers = await db.pull_requests_with_head(connection, pull.repo, pull.head_sha)
        if not numbers:
            numbers = await self.handlers.pull_requests_for_commit(
                ctx,
                repo=pull.repo,
                head_sha=pull.head_sha,
                installation_id=pull.installation_id,
            )
        jobs = [plan_check(replace(pull, number=number)) for number in numbers]
        async with self.pool.connection() as connection, connection.transaction():
            await self.defer_all(connection, jobs)

    async def _evaluate_gate(
        self, job_context: procrastinate.JobContext, /, attempt: int = 0, **kwargs: Any
    ) -> None:
        ctx = self._context(job_context)
        await self._retrying(job_context, lambda: self.handlers.evaluate_gate(ctx, **kwargs))

    async def _rerun_command(
        self, job_context: procrastinate.JobContext, /, attempt: int = 0, **kwargs: Any
    ) -> None:
        ctx = self._context(job_context)
        await self._retrying(job_context, lambda: self.handlers.rerun_command(ctx, **kwargs))

    async def _forget(self, job_context: procrastinate.JobContext, /, **kwargs: Any) -> None:
        ctx = self._context(job_context)
        await self._retrying_in_place(
            job_context, lambda: self.handlers.forget_membership(ctx, **kwargs)
        )

    async def _installation(self, job_context: procrastinate.JobContext, /, **kwargs: Any) -> None:
        ctx = self._context(job_context)
        await self._retrying_in_place(
            job_context, lambda: self.handlers.record_installation(ctx, **kwargs)
        )

    async def _retry_stalled_periodically(self, timestamp: int) -> None:
        await _periodically(TASK_RETRY_STALLED_JOBS, self.retry_stalled_jobs)

    async def _purge_reports_periodically(self, timestamp: int) -> None:
        """Report pages live as long as the operator says (MIGSAFE_REPORT_RETENTION_DAYS)."""
        days = self.settings.report_retention_days if self.settings else DEFAULT_RETENTION_DAYS

        async def purge() -> None:
            async with self.pool.connection() as connection:
                deleted = await purge_expired_reports(connection, retention_days=days)
            logger.info("purged %s reports older than %s days", deleted, days)

        await _periodically(TASK_PURGE_REPORTS, purge)


def retry_stalled_cron(stalled_after_s: float) -> str:
    """Every two stall timeouts, at most every minute (cron's seconds field when shorter): a
    dead worker's job waits at most three timeouts; each pass is one query and one job row."""
    every_s = max(1, min(60, round(stalled_after_s * 2)))
    return "* * * * *" if every_s == 60 else f"* * * * * */{every_s}"


async def _periodically(task: str, run: Callable[[], Awaitable[Any]]) -> None:
    try:
        await run()
    except Exception as error:
        logger.warning(
            "periodic job %s failed: %s; runs again on its schedule", task, one_line_cause(error)
        )
        logger.debug("periodic job %s: the traceback", task, exc_info=error)
        raise


async def _waiting_job_id(
    connection: psycopg.AsyncConnection[Any], queueing_lock: str | None
) -> int | None:
    cursor = await connection.execute(
        "SELECT id FROM procrastinate_jobs WHERE queueing_lock = %s AND status = 'todo'",
        (queueing_lock,),
    )
    row = await cursor.fetchone()
    return int(row[0]) if row else None


def _attempt_of(task_kwargs: dict[str, Any]) -> int:
    """How many times this work failed before (0 for a job a webhook deferred)."""
    attempt = task_kwargs.get("attempt")
    return attempt if isinstance(attempt, int) else 0
