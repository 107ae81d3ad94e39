"""What a job is, before it is queued: its task, its JSON arguments and its locks.

A webhook router (or a job deferring a follow-up) decides what should run as a
`PlannedJob`; `bot.jobs.queue` defers it. The check and the gate of a pull request carry
one `PullRequestJob`: the pull request, the head it was asked for, and why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

TASK_CHECK_PULL_REQUEST = "migsafe.check_pull_request"
TASK_EVALUATE_GATE = "migsafe.evaluate_gate"
TASK_RERUN_COMMAND = "migsafe.rerun_command"
TASK_FORGET_MEMBERSHIP = "migsafe.forget_membership"
TASK_RECORD_INSTALLATION = "migsafe.record_installation"
TASK_RETRY_STALLED_JOBS = "migsafe.retry_stalled_jobs"
TASK_PURGE_REPORTS = "migsafe.purge_reports"


@dataclass(frozen=True)
class PlannedJob:
    task: str
    kwargs: dict[str, Any]
    lock: str | None = None
    queueing_lock: str | None = None
    schedule_in_s: int | None = None


@dataclass(frozen=True)
class PullRequestJob:
    """A pull request at a head, as a check or gate job is about it.

    `number` is None only for a check of a commit whose pull requests are not known yet (a
    fork's check suite names none): that job finds them and defers one check each.
    `trigger` says why the job runs, for the log."""

    repo: str
    number: int | None
    head_sha: str
    delivery_id: str
    installation_id: int | None
    trigger: str

    @classmethod
    def from_job(cls, kwargs: dict[str, Any]) -> PullRequestJob:
        """From a job's arguments (which may hold more, e.g. `attempt`)."""
        return cls(
            repo=kwargs["repo"],
            number=kwargs["number"],
            head_sha=kwargs["head_sha"],
            delivery_id=kwargs["delivery_id"],
            installation_id=kwargs["installation_id"],
            trigger=kwargs["trigger"],
        )

    def job_kwargs(self) -> dict[str, Any]:
        """The job's JSON arguments (and the handlers' keyword arguments)."""
        return asdict(self)

    @property
    def pull_number(self) -> int:
        """The number, for the jobs that only run for a known pull request."""
        if self.number is None:
            raise ValueError(f"{self.repo}@{self.head_sha}: the job names no pull request")
        return self.number

    @property
    def name(self) -> str:
        """`owner/repo#12`, for log lines."""
        return f"{self.repo}#{self.number}"


def pull_request_lock(repo: str, number: int) -> str:
    return f"{repo}#{number}"


def plan_check(pull: PullRequestJob) -> PlannedJob:
    """A check of `pull.head_sha`; without a number, the job finds the pull requests with
    that head and defers one check each."""
    if pull.number is None:
        where = f"{pull.repo}@{pull.head_sha}"
        return PlannedJob(TASK_CHECK_PULL_REQUEST, pull.job_kwargs(), where, f"check:{where}")
    lock = pull_request_lock(pull.repo, pull.number)
    queueing_lock = f"check:{lock}@{pull.head_sha}"
    return PlannedJob(TASK_CHECK_PULL_REQUEST, pull.job_kwargs(), lock, queueing_lock)


def plan_gate(pull: PullRequestJob, *, refresh_memberships: bool = False) -> PlannedJob:
    """Re-evaluate the approval gate (labels, reviews); it reads the current state, so one
    queued evaluation per PR is enough. `refresh_memberships` (a membership changed): the
    evaluation asks GitHub rather than this worker's membership cache."""
    lock = pull_request_lock(pull.repo, pull.pull_number)
    kwargs = pull.job_kwargs()
    if refresh_memberships:
        kwargs["refresh_memberships"] = True
        # Its own queueing lock: a queued plain evaluation must not swallow the refresh.
        return PlannedJob(TASK_EVALUATE_GATE, kwargs, lock, f"gate-refresh:{lock}")
    return PlannedJob(TASK_EVALUATE_GATE, kwargs, lock, f"gate:{lock}")


def plan_rerun(
    *,
    repo: str,
    number: int,
    comment_id: int,
    commenter: str,
    delivery_id: str,
    installation_id: int | None,
) -> PlannedJob:
    kwargs = {
        "repo": repo,
        "number": number,
        "comment_id": comment_id,
        "commenter": commenter,
        "delivery_id": delivery_id,
        "installation_id": installation_id,
    }
    return PlannedJob(TASK_RERUN_COMMAND, kwargs, None, f"rerun:{repo}#{number}:{comment_id}")


def plan_forget_membership(
    *,
    org: str,
    team_slug: str | None,
    login: str,
    delivery_id: str,
    installation_id: int | None,
) -> PlannedJob:
    kwargs = {
        "org": org,
        "team_slug": team_slug,
        "login": login,
        "delivery_id": delivery_id,
        "installation_id": installation_id,
    }
    return PlannedJob(TASK_FORGET_MEMBERSHIP, kwargs)


def plan_record_installation(*, installation_id: int, action: str, delivery_id: str) -> PlannedJob:
    kwargs = {"installation_id": installation_id, "action": action, "delivery_id": delivery_id}
    return PlannedJob(TASK_RECORD_INSTALLATION, kwargs)
