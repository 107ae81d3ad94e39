"""What the jobs do: check a pull request, evaluate its approval gate, answer commands.

Each function is a job handler: `ctx` is a `bot.jobs.ServiceContext` (the queue, the pool,
the job), the keyword arguments are the job's. GitHub is reached through `bot.github`; the
analysis runs in a worker thread (`run_check` is blocking and starts child processes).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from bot.analysis.catalog import RULES
from bot.check import CheckOptions, run_check
from bot.errors import UserError
from bot.github.auth import AppCredentials, InstallationTokens
from bot.github.checks import (
    annotations_for,
    complete_check_run,
    conclusion_for,
    create_check_run,
    update_check_run,
)
from bot.github.client import GitHub, InstallationAPI, delivery_id, get_list, repo_vars
from bot.github.comments import review_comments_for, sync_review_comments
from bot.github.pulls import (
    add_reaction,
    can_write,
    collaborator_permission,
    create_issue_comment,
    file_at_ref,
    get_pull,
    list_reviews,
    pull_request_files,
    touches_migrations,
)
from bot.github.tarball import download_tree
from bot.github.teams import TeamMemberships
from bot.jobs import plan_check, plan_gate
from bot.policy.approvals import Review, check_name, membership_checks
from bot.policy.approvals import evaluate_gate as gate_verdict
from bot.policy.backup import BackupSourceSettings, fetch_backup_status
from bot.policy.config import POLICY_PATH, Policy, parse_policy
from bot.policy.environments import environment_for_branch
from bot.policy.fingerprint import migration_fingerprint
from bot.policy.gate_report import render_gate_summary
from bot.report import verdict
from bot.report.json_report import finding_from_json, to_document
from bot.report.markdown import render_markdown
from bot.report.plan import contacts_from_policy
from bot.result import CheckResult
from bot.store import db
from bot.store import pages as pages_store
from bot.web.tokens import page_url

if TYPE_CHECKING:
    from bot.jobs import ServiceContext

logger = logging.getLogger("migsafe.service")

CHECK_NAME = "migsafe"
RERUN_REPLY_MARKER = "<!-- migsafe:rerun-refused -->"
DEFAULT_GLOBS = ("**/versions/*.py",)
FORK_SANDBOX_SKIPPED = (
    "the pull request comes from a fork; a writer's `/migsafe rerun` runs it for this commit"
)


# -- the process's GitHub connection -----------------------------------------------------------


@dataclass
class _GitHubServices:
    session: aiohttp.ClientSession
    github: GitHub
    memberships: TeamMemberships


_services: dict[tuple[str, int], _GitHubServices] = {}


def _github(ctx: ServiceContext) -> _GitHubServices:
    """One session, token cache and membership cache per process (and GitHub App)."""
    settings = ctx.settings
    if settings is None:
        raise RuntimeError("the job queue was started without settings")
    key = (settings.github_api_url, settings.app_id)
    if key not in _services:
        session = aiohttp.ClientSession()
        github = GitHub(
            session,
            api_url=settings.github_api_url,
            credentials=AppCredentials(str(settings.app_id), settings.private_key),
            tokens=InstallationTokens(),
        )
        _services[key] = _GitHubServices(session, github, TeamMemberships())
    return _services[key]


async def close_github_sessions() -> None:
    """Close this process's GitHub sessions (at shutdown; tests between event loops)."""
    while _services:
        _, services = _services.popitem()
        await services.session.close()


def _installation(ctx: ServiceContext, installation_id: int | None) -> InstallationAPI:
    if installation_id is None:
        raise RuntimeError("the delivery names no installation: migsafe cannot act on it")
    return _github(ctx).github.installation(installation_id)


# -- check_pull_request ------------------------------------------------------------------------


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
    """Check `head_sha` of PR `repo#number`: the `migsafe` check run, annotations, review
    comments, the stored analysis, then the approval gate."""
    _set_delivery(delivery_id)
    api = _installation(ctx, installation_id)
    pull = await get_pull(api, repo, number)
    if pull["state"] != "open" or pull["head"]["sha"] != head_sha:
        logger.info("%s#%s: %s is no longer the open head; skipped", repo, number, head_sha)
        return
    check_run_id = await _start_check_run(ctx, api, repo, head_sha, pull["html_url"])
    try:
        await _check(ctx, api, repo, pull, check_run_id)
    except Exception:
        # The queue retries the job; the run must not stay "in progress" meanwhile.
        await complete_check_run(
            api,
            repo,
            check_run_id,
            conclusion="neutral",
            title="migsafe could not finish this check",
            summary="An error interrupted the check; it is retried automatically.",
        )
        raise
    await evaluate_gate(
        ctx,
        repo=repo,
        number=number,
        head_sha=head_sha,
        delivery_id=delivery_id,
        installation_id=installation_id,
        trigger=f"check ({trigger})",
    )


async def _start_check_run(
    ctx: ServiceContext, api: InstallationAPI, repo: str, head_sha: str, details_url: str
) -> int:
    """The `migsafe` run of `head_sha`, in progress: the one a dead worker left in progress
    (its job is being retried: one run, not a stuck one beside a new one), else a new one."""
    app_id = ctx.settings.app_id if ctx.settings else None
    listed = await api.getitem(
        "/repos/{owner}/{repo}/commits/{ref}/check-runs{?check_name,status}",
        {**repo_vars(repo), "ref": head_sha, "check_name": CHECK_NAME, "status": "in_progress"},
    )
    for run in listed.get("check_runs", []):
        if (run.get("app") or {}).get("id") == app_id and run.get("head_sha") == head_sha:
            run_id = int(run["id"])
            await update_check_run(api, repo, run_id, {"status": "in_progress"})
            return run_id
    return await create_check_run(
        api, repo, name=CHECK_NAME, head_sha=head_sha, details_url=details_url
    )


async def _check(
    ctx: ServiceContext, api: InstallationAPI, repo: str, pull: dict[str, Any], run_id: int
) -> None:
    number, head_sha = int(pull["number"]), pull["head"]["sha"]
    try:
        policy = await _base_policy(api, repo, pull)
    except UserError as error:
        await complete_check_run(
            api,
            repo,
            run_id,
            conclusion="failure",
            title="The policy file on the base branch is invalid",
            summary=str(error),
        )
        return
    files = await pull_request_files(api, repo, number)
    globs = _migration_globs(policy)
    touched = touches_migrations(files, globs)
    if not touched:
        analysis_id = await _store(ctx, repo, number, db.Analysis(head_sha, None, "success", {}))
        await complete_check_run(
            api,
            repo,
            run_id,
            conclusion="success",
            title="No migration changes",
            summary=f"None of the {len(files)} changed files is a migration ({', '.join(globs)}).",
            details_url=_details_url(ctx, analysis_id, pull),
        )
        return
    sandbox = await _sandbox_allowed(ctx, repo, pull)
    with tempfile.TemporaryDirectory(prefix="migsafe-pr-") as tmp:
        base_tree = await download_tree(api, repo, pull["base"]["sha"], Path(tmp) / "base")
        head_tree = await download_tree(api, repo, head_sha, Path(tmp) / "head")
        options = CheckOptions(
            path=head_tree,
            base_tree=base_tree,
            policy=policy,
            environment=environment_for_branch(policy, pull["base"]["ref"]),
            sandbox=sandbox,
            database_url=ctx.settings.sandbox_url if ctx.settings else None,
        )
        try:
            result = await asyncio.to_thread(run_check, options)
        except UserError as error:
            await complete_check_run(
                api,
                repo,
                run_id,
                conclusion="failure",
                title="migsafe could not read the migrations",
                summary=str(error),
            )
            return
        fingerprint = migration_fingerprint(_tree_files(head_tree, globs), globs)
    if not sandbox and result.sandbox is None:
        result = replace(result, sandbox_skipped=FORK_SANDBOX_SKIPPED)
    analysis_id = await _store(
        ctx,
        repo,
        number,
        db.Analysis(head_sha, fingerprint, conclusion_for(result), to_document(result)),
    )
    details_url = _details_url(ctx, analysis_id, pull)
    await _publish(api, repo, pull, run_id, result, policy, sandbox, details_url)


async def _publish(
    api: InstallationAPI,
    repo: str,
    pull: dict[str, Any],
    run_id: int,
    result: CheckResult,
    policy: Policy,
    sandbox: bool,
    details_url: str,
) -> None:
    head_sha = pull["head"]["sha"]
    link_base = f"{pull['base']['repo']['html_url']}/blob/{head_sha}/"
    summary = render_markdown(result, link_base=link_base, contacts=contacts_from_policy(policy))
    if not sandbox:
        summary = (
            "> The sandbox did not run: this pull request comes from a fork. Someone with "
            "write access can comment `/migsafe rerun` to run it for this commit.\n\n" + summary
        )
    await complete_check_run(
        api,
        repo,
        run_id,
        conclusion=conclusion_for(result),
        title=verdict(result),
        summary=summary,
        annotations=annotations_for(result.findings),
        details_url=details_url,
    )
    wanted = review_comments_for(result.findings, RULES)
    await sync_review_comments(api, repo, int(pull["number"]), head_sha, wanted)


async def _base_policy(api: InstallationAPI, repo: str, pull: dict[str, Any]) -> Policy:
    """The policy file of the BASE branch: a pull request cannot change its own rules."""
    raw = await file_at_ref(api, repo, POLICY_PATH, pull["base"]["sha"])
    if raw is None:
        return Policy.default()
    source = f"{pull['base']['ref']}:{POLICY_PATH}"
    return parse_policy(raw.decode("utf-8", "replace"), source, known_rule_ids=set(RULES))


def _migration_globs(policy: Policy) -> list[str]:
    if policy.migration_paths is not None:
        return list(policy.migration_paths)
    location = policy.alembic.script_location
    return policy.migration_globs(location) if location else list(DEFAULT_GLOBS)


def _tree_files(root: Path, globs: list[str]) -> dict[str, bytes]:
    from bot.policy.fingerprint import matches_any

    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in root.rglob("*.py")
        if path.is_file() and matches_any(path.relative_to(root).as_posix(), globs)
    }


async def _sandbox_allowed(ctx: ServiceContext, repo: str, pull: dict[str, Any]) -> bool:
    """Code from a fork reaches the sandbox only for a commit a writer asked for."""
    head_repo = pull["head"].get("repo") or {}
    if head_repo.get("full_name") == repo:
        return True
    async with ctx.pool.connection() as connection:
        return await db.sandbox_approved(
            connection, repo=repo, number=int(pull["number"]), head_sha=pull["head"]["sha"]
        )


async def _store(ctx: ServiceContext, repo: str, number: int, analysis: db.Analysis) -> int:
    """Keep the analysis (the gate reads it; its report page shows it); its id."""
    async with ctx.pool.connection() as connection:
        return await pages_store.record_analysis(
            connection, repo=repo, number=number, analysis=analysis
        )


def _details_url(ctx: ServiceContext, analysis_id: int | None, pull: dict[str, Any]) -> str:
    """The run's report page, or the pull request where migsafe knows no public URL."""
    page = page_url(ctx.settings, analysis_id) if ctx.settings and analysis_id else None
    return page or str(pull["html_url"])


# -- the approval gate -----------------------------------------------------------------------


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
    """The `migsafe/approvals (<base>)` check run for the PR's current head, from reviews,
    team memberships and the stored analysis (no re-run of the sandbox)."""
    _set_delivery(delivery_id)
    api = _installation(ctx, installation_id)
    pull = await get_pull(api, repo, number)
    if pull["state"] != "open":
        return
    head_sha = pull["head"]["sha"]
    async with ctx.pool.connection() as connection:
        analysis = await db.latest_analysis(connection, repo=repo, number=number, head_sha=head_sha)
        fingerprints = await db.migration_fingerprints(connection, repo=repo, number=number)
    if analysis is None:  # the head was never checked: check it, the gate follows
        await ctx.defer(
            plan_check(
                repo=repo,
                number=number,
                head_sha=head_sha,
                delivery_id=delivery_id,
                installation_id=installation_id,
                trigger=f"gate ({trigger})",
            )
        )
        return
    policy = await _base_policy(api, repo, pull)
    base_ref = pull["base"]["ref"]
    environment = environment_for_branch(policy, base_ref)
    reviews = [_review(r) for r in await list_reviews(api, repo, number)]
    author = pull["user"]["login"]
    memberships = await _memberships(ctx, api, membership_checks(reviews, author, policy))
    findings = [finding_from_json(f) for f in analysis.report.get("findings", [])]
    files = await pull_request_files(api, repo, number)
    backup_settings = BackupSourceSettings.from_env()
    backup = await fetch_backup_status(backup_settings) if backup_settings.configured else None
    result = gate_verdict(
        reviews=reviews,
        author=author,
        memberships=memberships,
        fingerprints=fingerprints,
        current_fingerprint=analysis.migration_fingerprint or "",
        findings=findings,
        policy=policy,
        environment=environment,
        changes_migrations=analysis.migration_fingerprint is not None,
        labels=[label["name"] for label in pull.get("labels", [])],
        changed_files=[f.filename for f in files],
        pr_body=pull.get("body") or "",
        backup=backup,
        now=datetime.now(UTC),
    )
    title, summary = render_gate_summary(result, environment=environment, base_branch=base_ref)
    gate = pages_store.gate_document(
        result,
        base_branch=base_ref,
        contacts=contacts_from_policy(policy),
        backup=backup,
        evaluated_at=datetime.now(UTC),
    )
    async with ctx.pool.connection() as connection:
        analysis_id = await pages_store.save_gate_for_head(
            connection, repo=repo, number=number, head_sha=head_sha, gate=gate
        )
    details_url = _details_url(ctx, analysis_id, pull)
    run_id = await create_check_run(
        api, repo, name=check_name(base_ref), head_sha=head_sha, details_url=details_url
    )
    await complete_check_run(
        api,
        repo,
        run_id,
        conclusion=result.conclusion,
        title=title,
        summary=summary,
        details_url=details_url,
    )


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
    ctx: ServiceContext, api: InstallationAPI, wanted: set[tuple[str, str]]
) -> dict[tuple[str, str], bool]:
    cache = _github(ctx).memberships
    answers = {}
    for team, login in sorted(wanted):
        org, _, slug = team.partition("/")
        answers[(team, login)] = await cache.is_active_member(api, org, slug, login)
    return answers


# -- commands and bookkeeping -----------------------------------------------------------------


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
    """`/migsafe rerun`: writers get a reaction and a fresh check of the current head (with
    the sandbox, for a fork); anyone else one polite reply and nothing else."""
    _set_delivery(delivery_id)
    api = _installation(ctx, installation_id)
    permission = await collaborator_permission(api, repo, commenter)
    if not can_write(permission):
        await _refuse_once(api, repo, number, commenter)
        return
    await add_reaction(api, repo, comment_id, "+1")
    pull = await get_pull(api, repo, number)
    head_sha = pull["head"]["sha"]
    async with ctx.pool.connection() as connection:
        await db.approve_sandbox(
            connection, repo=repo, number=number, head_sha=head_sha, by=commenter
        )
    await ctx.defer(
        plan_check(
            repo=repo,
            number=number,
            head_sha=head_sha,
            delivery_id=delivery_id,
            installation_id=installation_id,
            trigger=f"/migsafe rerun by {commenter}",
        )
    )


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


async def pull_requests_for_commit(
    ctx: ServiceContext, *, repo: str, head_sha: str, installation_id: int | None
) -> list[int]:
    """Open PRs of `repo` whose head is `head_sha` (a fork's check suite names none)."""
    api = _installation(ctx, installation_id)
    pulls = await get_list(
        api,
        "/repos/{owner}/{repo}/pulls{?state,per_page}",
        {**repo_vars(repo), "state": "open"},
        iterable_key=None,
    )
    return sorted(int(p["number"]) for p in pulls if p["head"]["sha"] == head_sha)


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
    _set_delivery(delivery_id)
    if team_slug is None:
        return
    _github(ctx).memberships.forget(org, team_slug, login)
    async with ctx.pool.connection() as connection:
        waiting = await db.pull_requests_awaiting_approval(connection, owner=org)
    for repo, number, head_sha in waiting:
        await ctx.defer(
            plan_gate(
                repo=repo,
                number=number,
                head_sha=head_sha,
                delivery_id=delivery_id,
                installation_id=installation_id,
                trigger=f"membership of {login} in {org}/{team_slug} changed",
            )
        )


async def record_installation(
    ctx: ServiceContext, *, installation_id: int, action: str, delivery_id: str
) -> None:
    """The delivery row is the record; this says it in the log."""
    _set_delivery(delivery_id)
    logger.info("installation %s: %s", installation_id, action)


def _set_delivery(value: str) -> None:
    delivery_id.set(value)
