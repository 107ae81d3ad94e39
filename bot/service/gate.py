"""The merge gate: the `migsafe/approvals (<base>)` check run of a pull request's head.

Decided from reviews, team memberships, the backup status and the stored analysis (never a
new run of the sandbox) by `bot.policy.approvals`; this module fetches those and publishes
the verdict.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bot.github.checks import create_completed_check_run
from bot.github.client import InstallationAPI
from bot.github.pulls import list_reviews, pull_request_files
from bot.jobs import PullRequestJob, ServiceContext, plan_check, plan_gate
from bot.policy.approvals import Review, check_name, membership_checks
from bot.policy.approvals import evaluate_gate as gate_verdict
from bot.policy.backup import BackupSourceSettings, BackupUnavailable, fetch_backup_status
from bot.policy.environments import environment_for_branch
from bot.policy.gate_report import render_gate_summary
from bot.report.json_report import finding_from_json
from bot.report.plan import contacts_from_policy
from bot.service.connection import github_services, installation, set_delivery
from bot.service.pull import fetch_pull_request
from bot.service.runs import base_policy, details_url, log_completed
from bot.store import db
from bot.store import pages as pages_store

logger = logging.getLogger("migsafe.service")


async def evaluate_gate(
    ctx: ServiceContext,
    *,
    from_check: bool = False,
    refresh_memberships: bool = False,
    **job: Any,
) -> None:
    """The job handler: `job` holds a `PullRequestJob`'s fields."""
    await evaluate(
        ctx,
        PullRequestJob.from_job(job),
        from_check=from_check,
        refresh_memberships=refresh_memberships,
    )


async def evaluate(
    ctx: ServiceContext,
    job: PullRequestJob,
    *,
    from_check: bool = False,
    refresh_memberships: bool = False,
) -> None:
    """The gate's check run for the PR's current head.

    `from_check`: called by the check that just stored the analysis; it never defers a
    check (a head moved meanwhile gets its own). `refresh_memberships`: a membership
    changed; another worker's cache may still hold the old answer, so ask GitHub."""
    set_delivery(job.delivery_id)
    api = installation(ctx, job.installation_id)
    pull = await fetch_pull_request(api, job.repo, job.pull_number)
    if pull.state != "open":
        return
    repo, number, head_sha = pull.repo, pull.number, pull.head_sha
    async with ctx.pool.connection() as connection:
        analysis = await db.latest_analysis(connection, repo=repo, number=number, head_sha=head_sha)
        fingerprints = await db.migration_fingerprints(connection, repo=repo, number=number)
    if analysis is not None and "error" in analysis.report:
        # The check failed with an error (its run says why): no verdict to gate on.
        logger.info("%s: the check of %s failed; no gate", pull.name, head_sha)
        return
    if analysis is None and from_check:
        logger.info("%s: head moved to %s during the check; its check gates", pull.name, head_sha)
        return
    if analysis is None:  # the head was never checked: check it, the gate follows
        await ctx.defer(
            plan_check(
                PullRequestJob(
                    repo=repo,
                    number=number,
                    head_sha=head_sha,
                    delivery_id=job.delivery_id,
                    installation_id=job.installation_id,
                    trigger=f"gate ({job.trigger})",
                )
            )
        )
        return
    policy = await base_policy(api, pull)
    environment = environment_for_branch(policy, pull.base_ref)
    reviews = [_review(r) for r in await list_reviews(api, repo, number)]
    wanted = membership_checks(reviews, pull.author, policy)
    memberships = await _memberships(ctx, api, wanted, refresh=refresh_memberships)
    findings = [finding_from_json(f) for f in analysis.report.get("findings", [])]
    files = await pull_request_files(api, repo, number)
    backup_settings = BackupSourceSettings.from_env()
    backup = await fetch_backup_status(backup_settings) if backup_settings.configured else None
    if isinstance(backup, BackupUnavailable):
        logger.warning("backup status unavailable: %s %s", backup.reason, backup.log_detail)
    result = gate_verdict(
        reviews=reviews,
        author=pull.author,
        memberships=memberships,
        fingerprints=fingerprints,
        current_fingerprint=analysis.migration_fingerprint or "",
        findings=findings,
        policy=policy,
        environment=environment,
        changes_migrations=analysis.migration_fingerprint is not None,
        labels=list(pull.labels),
        changed_files=[f.filename for f in files],
        pr_body=pull.body,
        backup=backup,
        now=datetime.now(UTC),
    )
    title, summary = render_gate_summary(result, environment=environment, base_branch=pull.base_ref)
    gate = pages_store.gate_document(
        result,
        base_branch=pull.base_ref,
        contacts=contacts_from_policy(policy),
        backup=backup,
        evaluated_at=datetime.now(UTC),
    )
    async with ctx.pool.connection() as connection:
        analysis_id = await pages_store.save_gate_for_head(
            connection, repo=repo, number=number, head_sha=head_sha, gate=gate
        )
    # One POST: a failure between creating and completing would leave a run in progress.
    name = check_name(pull.base_ref)
    await create_completed_check_run(
        api,
        repo,
        name=name,
        head_sha=head_sha,
        conclusion=result.conclusion,
        title=title,
        summary=summary,
        details_url=details_url(ctx, analysis_id, pull),
    )
    log_completed(ctx, name, pull, result.conclusion, title, analysis_id)


def _review(data: Mapping[str, Any]) -> Review:
    user = data.get("user") or {}
    submitted = data.get("submitted_at")
    return Review(
        user=user.get("login", ""),
        user_type=user.get("type", "User"),
        state=data["state"],
        commit_id=data.get("commit_id") or "",
        submitted_at=datetime.fromisoformat(submitted.replace("Z", "+00:00"))
        if submitted
        else None,
        id=int(data["id"]),
    )


async def _memberships(
    ctx: ServiceContext, api: InstallationAPI, wanted: set[tuple[str, str]], *, refresh: bool
) -> dict[tuple[str, str], bool]:
    cache = github_services(ctx).memberships
    answers = {}
    for team, login in sorted(wanted):
        org, _, slug = team.partition("/")
        answers[(team, login)] = await cache.is_active_member(
            api, org, slug, login, refresh=refresh
        )
    return answers


async def forget_membership(
    ctx: ServiceContext,
    *,
    org: str,
    team_slug: str | None,
    login: str,
    delivery_id: str,
    installation_id: int | None,
) -> None:
    """A team membership changed: drop what this process cached about it (other workers'
    caches expire by their TTL), and re-evaluate the gates waiting for approvals in the
    installation's repositories of that organisation."""
    set_delivery(delivery_id)
    if team_slug is None:
        return
    github_services(ctx).memberships.forget(org, team_slug, login)
    async with ctx.pool.connection() as connection:
        waiting = await db.pull_requests_awaiting_approval(connection, owner=org)
    for repo, number, head_sha in waiting:
        job = PullRequestJob(
            repo=repo,
            number=number,
            head_sha=head_sha,
            delivery_id=delivery_id,
            installation_id=installation_id,
            trigger=f"membership of {login} in {org}/{team_slug} changed",
        )
        await ctx.defer(plan_gate(job, refresh_memberships=True))
