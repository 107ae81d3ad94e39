"""A running job keeps its worker alive: its heartbeat beats for as long as the job runs.

procrastinate (3.10) stops a worker's heartbeat as soon as the worker is asked to stop
(SIGTERM: `Worker._shutdown` cancels its side tasks, the heartbeat among them, and only then
waits for the running jobs). A check can run for minutes; `stalled_after_s` after the signal
another worker's pass for dead workers (`JobQueue.retry_stalled_jobs`) would put the check
back in the queue and run it again while the draining worker still works on it: two
writers of one check run, review comments synced twice, the pull request's lock bypassed.

So each job beats its own worker's heartbeat while it runs, through a drain too; a worker
really dead (killed, host lost) beats no more and its jobs are taken over as before. A
procrastinate worker middleware (public API) rather than a subclass overriding the
worker's private shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from procrastinate import JobContext
from procrastinate.manager import JobManager
from procrastinate.middleware import AsyncCallNext, WorkerMiddleware
from procrastinate.worker import Worker

from bot.service_logging import one_line_cause

logger = logging.getLogger("migsafe.jobs")


def keep_worker_alive(every_s: float) -> WorkerMiddleware:
    """A worker middleware: while a job runs, beat its worker's heartbeat every `every_s`."""

    async def middleware(call_next: AsyncCallNext, context: JobContext, worker: Worker) -> Any:
        worker_id = context.job.worker_id  # the worker the queue holds this job for
        if worker_id is None:
            return await call_next()
        beating = asyncio.create_task(
            _beat(worker.app.job_manager, worker_id, every_s),
            name=f"heartbeat for job {context.job.id}",
        )
        try:
            return await call_next()
        finally:
            beating.cancel()
            await asyncio.wait({beating})  # does not re-raise the beat's cancellation

    return middleware


async def _beat(manager: JobManager, worker_id: int, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            await manager.update_heartbeat(worker_id)
        except Exception as error:
            # The job goes on: a missed beat only matters if they all fail for a whole
            # stall timeout, and then the database is out of reach for the job too.
            logger.warning("worker %s: heartbeat failed: %s", worker_id, one_line_cause(error))
