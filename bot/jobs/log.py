"""The operator's log of failed jobs: one warning line each, naming what the job was about.

The traceback goes to DEBUG only (procrastinate's own line with the traceback is kept at
DEBUG too: `bot.service_logging`).
"""

from __future__ import annotations

import logging
from typing import Any

import procrastinate

from bot.service_logging import failure_logged, one_line_cause

logger = logging.getLogger("migsafe.jobs")  # the queue's own logger: one name in the log


def log_job_failure(job: procrastinate.jobs.Job, error: BaseException, retry: str) -> None:
    """ONE warning line: the job, what it was about, the cause, whether it is retried; the
    traceback at DEBUG only (procrastinate's own line with the traceback is kept at DEBUG
    too: bot.service_logging)."""
    logger.warning(
        "job %s %s%s failed: %s; %s",
        job.id,
        job.task_name,
        job_subject(job.task_kwargs),
        one_line_cause(error),
        retry,
    )
    logger.debug("job %s: the traceback", job.id, exc_info=error)
    failure_logged(job.id)


def job_subject(kwargs: dict[str, Any]) -> str:
    """What a job is about, for its log lines: ` owner/repo#12 head <sha> (delivery <id>)`."""
    parts = []
    repo, number, head_sha = kwargs.get("repo"), kwargs.get("number"), kwargs.get("head_sha")
    if isinstance(repo, str):
        parts.append(f"{repo}#{number}" if number is not None else repo)
    if isinstance(head_sha, str):
        parts.append(f"head {head_sha}")
    if isinstance(kwargs.get("org"), str):
        team = kwargs.get("team_slug")
        parts.append(f"{kwargs['org']}/{team}" if team else str(kwargs["org"]))
    if not isinstance(repo, str) and kwargs.get("installation_id") is not None:
        parts.append(f"installation {kwargs['installation_id']}")
    if isinstance(kwargs.get("delivery_id"), str):
        parts.append(f"(delivery {kwargs['delivery_id']})")
    return "".join(f" {part}" for part in parts)
