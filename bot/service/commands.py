"""The `/migsafe` commands of pull request comments: `/migsafe rerun`.

Writers get a reaction and a fresh check of the current head (with the sandbox, for a
fork: only the head the writer saw when commenting); anyone else one polite reply and
nothing else.
"""

from __future__ import annotations

import logging

from bot.github.client import InstallationAPI, get_list, repo_vars
from bot.github.pulls import add_reaction, can_write, collaborator_permission, create_issue_comment
from bot.jobs import PullRequestJob, ServiceContext, plan_check
from bot.service.connection import installation, set_delivery
from bot.service.pull import fetch_pull_request
from bot.store import db

logger = logging.getLogger("migsafe.service")

RERUN_REPLY_MARKER = "<!-- migsafe:rerun-refused -->"


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
    """`/migsafe rerun` by `commenter` in comment `comment_id`."""
    set_delivery(delivery_id)
    api = installation(ctx, installation_id)
    permission = await collaborator_permission(api, repo, commenter)
    if not can_write(permission):
        await _refuse_once(api, repo, number, commenter)
        return
    pull = await fetch_pull_request(api, repo, number)
    head_sha = pull.head_sha
    if pull.from_fork and not await _head_unchanged_since(ctx, repo, number, head_sha, delivery_id):
        # A fork could push between the writer's comment and this job: approve only what
        # the writer saw. No reply: a new push gets a new check, and the writer can ask again.
        logger.warning(
            "%s#%s: /migsafe rerun by %s ignored: the head moved to %s since the comment",
            repo,
            number,
            commenter,
            head_sha,
        )
        return
    await add_reaction(api, repo, comment_id, "+1")
    async with ctx.pool.connection() as connection:
        await db.approve_sandbox(
            connection, repo=repo, number=number, head_sha=head_sha, by=commenter
        )
    job = PullRequestJob(
        repo=repo,
        number=number,
        head_sha=head_sha,
        delivery_id=delivery_id,
        installation_id=installation_id,
        trigger=f"/migsafe rerun by {commenter}",
    )
    await ctx.defer(plan_check(job))


async def _head_unchanged_since(
    ctx: ServiceContext, repo: str, number: int, head_sha: str, delivery_id: str
) -> bool:
    """Whether `head_sha` (GitHub's head now) is the head this service had recorded when the
    delivery `delivery_id` arrived."""
    async with ctx.pool.connection() as connection:
        received_at = await db.delivery_received_at(connection, delivery_id)
        recorded = await db.recorded_head(connection, repo=repo, number=number)
    if received_at is None or recorded is None:
        return False
    recorded_sha, recorded_at = recorded
    return recorded_sha == head_sha and recorded_at <= received_at


async def _refuse_once(api: InstallationAPI, repo: str, number: int, commenter: str) -> None:
    comments = await get_list(
        api,
        "/repos/{owner}/{repo}/issues/{issue_number}/comments",
        {**repo_vars(repo), "issue_number": str(number)},
        iterable_key=None,
    )
    if any(RERUN_REPLY_MARKER in (c.get("body") or "") for c in comments):
        return
    await create_issue_comment(
        api,
        repo,
        number,
        f"{RERUN_REPLY_MARKER}\nThanks @{commenter}! `/migsafe rerun` can only be used by "
        "people with write access to this repository, so nothing was re-run. A maintainer "
        "can ask for it.",
    )
