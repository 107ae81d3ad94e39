"""What the jobs do (the seam between bot.jobs and the check pipeline).

Each function is a job handler: `ctx` is a `bot.jobs.ServiceContext` (the queue, the
pool, the job), the keyword arguments are the job's. The check pipeline comes in the
next step; until then every handler raises, and the job is retried then marked failed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.jobs import ServiceContext

NOT_YET = "bot.service: the check pipeline comes in the next step"


async def check_pull_request(
    ctx: ServiceContext,
    *,
    repo: str,
    number: int,
    head_sha: str,
    delivery_id: str,
    installation_id: int | None,
    trigger: str,
) -> None:
    """Check `head_sha` of PR `repo#number` and complete the `migsafe` check run."""
    raise NotImplementedError(NOT_YET)


async def pull_requests_for_commit(
    ctx: ServiceContext, *, repo: str, head_sha: str, installation_id: int | None
) -> list[int]:
    """Open PRs of `repo` whose head is `head_sha` (a fork's check suite names none)."""
    raise NotImplementedError(NOT_YET)


async def evaluate_gate(
    ctx: ServiceContext,
    *,
    repo: str,
    number: int,
    head_sha: str,
    delivery_id: str,
    installation_id: int | None,
    trigger: str,
) -> None:
    """Re-evaluate the approval gate after a label or review changed."""
    raise NotImplementedError(NOT_YET)


async def rerun_command(
    ctx: ServiceContext,
    *,
    repo: str,
    number: int,
    comment_id: int,
    commenter: str,
    delivery_id: str,
    installation_id: int | None,
) -> None:
    """`/migsafe rerun`: check the commenter's permission, react, defer a check."""
    raise NotImplementedError(NOT_YET)


async def forget_membership(
    ctx: ServiceContext,
    *,
    org: str,
    team_slug: str | None,
    login: str,
    delivery_id: str,
    installation_id: int | None,
) -> None:
    """A team membership changed: drop what is cached about it."""
    raise NotImplementedError(NOT_YET)


async def record_installation(
    ctx: ServiceContext, *, installation_id: int, action: str, delivery_id: str
) -> None:
    """The app was installed, removed, suspended, or its repositories changed."""
    raise NotImplementedError(NOT_YET)
