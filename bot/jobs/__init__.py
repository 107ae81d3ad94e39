"""The GitHub App's jobs: what a job is (`bot.jobs.plan`), the durable queue that runs them
(`bot.jobs.queue`), the heartbeat its running jobs keep (`bot.jobs.alive`) and the log line
of a failed one (`bot.jobs.log`).

The names other modules use are importable from here."""

from bot.jobs.log import job_subject, log_job_failure
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
    plan_forget_membership,
    plan_gate,
    plan_record_installation,
    plan_rerun,
)
from bot.jobs.queue import MAX_ATTEMPTS, Handlers, JobQueue, ServiceContext

__all__ = [
    "MAX_ATTEMPTS",
    "TASK_CHECK_PULL_REQUEST",
    "TASK_EVALUATE_GATE",
    "TASK_FORGET_MEMBERSHIP",
    "TASK_PURGE_REPORTS",
    "TASK_RECORD_INSTALLATION",
    "TASK_RERUN_COMMAND",
    "TASK_RETRY_STALLED_JOBS",
    "Handlers",
    "JobQueue",
    "PlannedJob",
    "PullRequestJob",
    "ServiceContext",
    "job_subject",
    "log_job_failure",
    "plan_check",
    "plan_forget_membership",
    "plan_gate",
    "plan_record_installation",
    "plan_rerun",
]
