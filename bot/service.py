"""What the jobs do: check a pull request, evaluate its approval gate, answer commands.

Each function is a job handler: `ctx` is a `bot.jobs.ServiceContext` (the queue, the pool,
the job), the keyword arguments are the job's. GitHub is reached through `bot.github`; the
analysis runs in a worker thread (`run_check` is blocking and starts child processes).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from gidgethub import BadRequest, RateLimitExceeded

from bot import metrics
from bot.analysis.catalog import RULES
from bot.check import CheckOptions, run_check
from bot.errors import UserError
from bot.github.auth import AppCredentials, InstallationTokens
from bot.github.checks import (
    annotations_for,
    complete_check_run,
    conclusion_for,
    create_check_run,
    create_completed_check_run,
    update_check_run,
)
from bot.github.client import (
    GitHub,
    InstallationAPI,
    RateLimited,
    ResponseTooLarge,
    delivery_id,
    get_list,
    repo_vars,
)
from bot.github.comments import review_comments_for, sync_review_comments
from bot.github.pulls import (
    DEFAULT_MIGRATION_GLOBS,
    MAX_PR_FILES,
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
from bot.github.tarball import UnsafeArchive, download_tree
from bot.github.teams import TeamMemberships
from bot.jobs import MAX_ATTEMPTS, plan_check, plan_gate
from bot.migrations.inputs import approval_fingerprint
from bot.policy.approvals import Review, check_name, membership_checks
from bot.policy.approvals import evaluate_gate as gate_verdict
from bot.policy.backup import BackupSourceSettings, BackupUnavailable, fetch_backup_status
from bot.policy.config import POLICY_PATH, Policy, parse_policy
from bot.policy.environments import environment_for_branch
from bot.policy.gate_report import render_gate_summary
from bot.report import verdict
from bot.report.json_report import finding_from_json, to_document
from bot.report.markdown import render_markdown
from bot.report.plan import contacts_from_policy
from bot.result import CheckResult
from bot.service_logging import one_line_cause
from bot.store import db
from bot.store import pages as pages_store
from bot.web.tokens import page_url

if TYPE_CHECKING:
    from bot.jobs import ServiceContext

logger = logging.getLogger("migsafe.service")

CHECK_NAME = "migsafe"
RERUN_REPLY_MARKER = "<!-- migsafe:rerun-refused -->"
FORK_SANDBOX_SKIPPED = (
    "the pull request comes from a fork; a writer's `/migsafe rerun` runs it for this commit"
)


# -- the process's GitHub connection -----------------------------------------------------------


@dataclass
class _GitHubServices:
    session: aiohttp.ClientSession
    github: GitHub
    memberships: TeamMemberships
    bot_login: str | None = None  # "<app slug>[bot]", from GET /app once


@dataclass(frozen=True)
class _PrometheusCalls:
    """The GitHub client's per-response hook, counted in bot.metrics (`installation_id`
    None: the App's own calls)."""

    installation_id: int | None = None

    def on_response(
        self, method: str, route_template: str, status: int, remaining: int | None
    ) -> None:
        metrics.record_github_call(route_template, status)
        if remaining is not None:
            metrics.set_rate_limit_remaining(self.installation_id, remaining)


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
            metrics=_PrometheusCalls(),
        )
        _services[key] = _GitHubServices(session, github, TeamMemberships())
    return _services[key]


async def _bot_login(ctx: ServiceContext) -> str:
    """migsafe's own login on GitHub: only its comments are ever edited or deleted."""
    services = _github(ctx)
    if services.bot_login is None:
        app = await services.github.app().getitem("/app")
        services.bot_login = f"{app['slug']}[bot]"
    return services.bot_login


async def close_github_sessions() -> None:
    """Close this process's GitHub sessions (at shutdown; tests between event loops)."""
    while _services:
        _, services = _services.popitem()
        await services.session.close()


def _installation(ctx: ServiceContext, installation_id: int | None) -> InstallationAPI:
    if installation_id is None:
        raise RuntimeError("the delivery names no installation: migsafe cannot act on it")
    return _github(ctx).github.installation(
        installation_id, metrics=_PrometheusCalls(installation_id)
    )


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
        verdict_stored = await _check(ctx, api, repo, pull, check_run_id)
    except Exception as error:
        if not is_permanent(error):
            # The queue retries the job. Meanwhile the run fails (GitHub counts `neutral` as
            # passing): a crashed check must never let a pull request through.
            await _fail_crashed(ctx, api, repo, check_run_id, error)
            raise
        # One warning line (the run's completion): the cause, not retried, the report page.
        await _fail(ctx, api, repo, pull, check_run_id, _COULD_NOT_FINISH, _permanent(error), error)
        logger.debug("%s#%s: the traceback", repo, number, exc_info=error)
        return
    if verdict_stored:
        await evaluate_gate(
            ctx,
            repo=repo,
            number=number,
            head_sha=head_sha,
            delivery_id=delivery_id,
            installation_id=installation_id,
            trigger=f"check ({trigger})",
            from_check=True,
        )


_COULD_NOT_FINISH = "migsafe could not finish this check"


def is_permanent(error: BaseException) -> bool:
    """An error that the same job would meet again: a hostile or oversized archive, or GitHub
    refusing the request itself (4xx but an expired token, a rate limit or a 404 race)."""
    if isinstance(error, UnsafeArchive | ResponseTooLarge):
        return True
    if isinstance(error, RateLimitExceeded | RateLimited) or not isinstance(error, BadRequest):
        return False
    status = int(error.status_code)
    return 400 <= status < 500 and status not in (401, 403, 404, 409, 429)


def _permanent(error: BaseException) -> str:
    return f"The check failed and will not be retried: {error}"


async def _fail_crashed(
    ctx: ServiceContext, api: InstallationAPI, repo: str, run_id: int, error: BaseException
) -> None:
    last = ctx.attempts + 1 >= MAX_ATTEMPTS
    summary = (
        f"An error interrupted the check ({type(error).__name__}); this was the last attempt, "
        "it will not be retried. Push a commit or comment `/migsafe rerun` to check again."
        if last
        else f"An error interrupted the check ({type(error).__name__}); it is retried "
        "automatically."
    )
    title = f"{_COULD_NOT_FINISH} (not retried)" if last else _COULD_NOT_FINISH
    await complete_check_run(api, repo, run_id, conclusion="failure", title=title, summary=summary)


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
) -> bool:
    """Check the head and complete the run; True when it stored a verdict the gate can use
    (False: the run failed with an error, stored as such; the gate is not evaluated)."""
    number, head_sha = int(pull["number"]), pull["head"]["sha"]
    try:
        policy = await _base_policy(api, repo, pull)
    except UserError as error:
        title = "The policy file on the base branch is invalid"
        await _fail(ctx, api, repo, pull, run_id, title, str(error))
        return False
    files = await pull_request_files(api, repo, number)
    globs = _migration_globs(policy)
    # GitHub lists at most MAX_PR_FILES files: beyond them a migration may hide.
    touched = len(files) >= MAX_PR_FILES or touches_migrations(files, globs)
    if not touched:
        analysis_id = await _store(ctx, repo, number, db.Analysis(head_sha, None, "success", {}))
        title = "No migration changes"
        await complete_check_run(
            api,
            repo,
            run_id,
            conclusion="success",
            title=title,
            summary=f"None of the {len(files)} changed files is a migration ({', '.join(globs)}).",
            details_url=_details_url(ctx, analysis_id, pull),
        )
        _log_completed(ctx, CHECK_NAME, repo, pull, "success", title, analysis_id)
        return True
    sandbox = await _sandbox_allowed(ctx, repo, pull)
    tmp = await asyncio.to_thread(tempfile.mkdtemp, prefix="migsafe-pr-")
    try:
        base_tree = await download_tree(api, repo, pull["base"]["sha"], Path(tmp) / "base")
        head_tree = await download_tree(api, repo, head_sha, Path(tmp) / "head")
        options = CheckOptions(
            path=head_tree,
            base_tree=base_tree,
            policy=policy,
            environment=environment_for_branch(policy, pull["base"]["ref"]),
            environment_reason=f"the pull request's base branch {pull['base']['ref']}"
            " (the policy's branches:, else its default_environment)",
            sandbox=sandbox,
            database_url=ctx.settings.sandbox_url if ctx.settings else None,
        )
        try:
            # What the approvals are for, read from the downloaded head before anything
            # runs (the check runs in its own copy): the revisions, env.py and what it
            # imports, the Alembic configuration, the setup's inputs.
            fingerprint = await asyncio.to_thread(approval_fingerprint, head_tree, policy)
            result = await asyncio.to_thread(run_check, options)
        except UserError as error:
            title = "migsafe could not read the migrations"
            await _fail(ctx, api, repo, pull, run_id, title, str(error))
            return False
    finally:
        # Removing two repository trees takes a while: not in the event loop.
        await asyncio.to_thread(shutil.rmtree, tmp, True)
    if not sandbox and result.sandbox is None:
        result = replace(result, sandbox_skipped=FORK_SANDBOX_SKIPPED)
    analysis_id = await _store(
        ctx,
        repo,
        number,
        db.Analysis(head_sha, fingerprint, conclusion_for(result), to_document(result)),
    )
    details_url = _details_url(ctx, analysis_id, pull)
    bot_login = await _bot_login(ctx)
    await _publish(api, repo, pull, run_id, result, policy, sandbox, details_url, bot_login)
    conclusion = conclusion_for(result)
    _log_completed(ctx, CHECK_NAME, repo, pull, conclusion, verdict(result), analysis_id)
    return True


async def _fail(
    ctx: ServiceContext,
    api: InstallationAPI,
    repo: str,
    pull: dict[str, Any],
    run_id: int,
    title: str,
    message: str,
    error: BaseException | None = None,
) -> None:
    """Complete the run as failed with `message`, and store the failure as the head's
    analysis (so nothing defers a new check of this head: it would fail the same way).
    `error`: the exception that stopped the check for good, named in the log line."""
    head_sha = pull["head"]["sha"]
    report = {"error": {"title": title, "message": message}}
    analysis = db.Analysis(head_sha, None, "failure", report)
    analysis_id = await _store(ctx, repo, int(pull["number"]), analysis)
    await complete_check_run(api, repo, run_id, conclusion="failure", title=title, summary=message)
    _log_completed(ctx, CHECK_NAME, repo, pull, "failure", title, analysis_id, error)


async def _publish(
    api: InstallationAPI,
    repo: str,
    pull: dict[str, Any],
    run_id: int,
    result: CheckResult,
    policy: Policy,
    sandbox: bool,
    details_url: str,
    bot_login: str | None,
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
    await sync_review_comments(
        api, repo, int(pull["number"]), head_sha, wanted, bot_login=bot_login
    )


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
    return policy.migration_globs(location) if location else list(DEFAULT_MIGRATION_GLOBS)


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
    return _report_url(ctx, analysis_id) or str(pull["html_url"])


def _report_url(ctx: ServiceContext, analysis_id: int | None) -> str | None:
    """The report page's URL with its token, None without MIGSAFE_PUBLIC_URL."""
    return page_url(ctx.settings, analysis_id) if ctx.settings and analysis_id else None


def _log_completed(
    ctx: ServiceContext,
    name: str,
    repo: str,
    pull: dict[str, Any],
    conclusion: str,
    title: str,
    analysis_id: int | None,
    error: BaseException | None = None,
) -> None:
    """ONE info line per completed check run, naming its report page (a warning when an
    `error` stopped the check for good: its cause, and that it is not retried).

    The URL carries the page's token, a capability: whoever reads this log can read the
    report. That is intended (the operator's log is as trusted as the page, issue 15); no
    other secret is ever logged, and the token grants nothing beyond this one page."""
    page = _report_url(ctx, analysis_id) or "none (MIGSAFE_PUBLIC_URL is not set)"
    cause = f"; {one_line_cause(error)}, not retried" if error is not None else ""
    logger.log(
        logging.WARNING if error is not None else logging.INFO,
        "%s#%s: %s of %s completed: %s (%s)%s; report %s",
        repo,
        pull["number"],
        name,
        pull["head"]["sha"],
        conclusion,
        title,
        cause,
        page,
    )


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
    from_check: bool = False,
    refresh_memberships: bool = False,
) -> None:
    """The `migsafe/approvals (<base>)` check run for the PR's current head, from reviews,
    team memberships and the stored analysis (no re-run of the sandbox).

    `from_check`: called by the check that just stored the analysis; it never defers a
    check (a head moved meanwhile gets its own). `refresh_memberships`: a membership
    changed; another worker's cache may still hold the old answer, so ask GitHub."""
    _set_delivery(delivery_id)
    api = _installation(ctx, installation_id)
    pull = await get_pull(api, repo, number)
    if pull["state"] != "open":
        return
    head_sha = pull["head"]["sha"]
    async with ctx.pool.connection() as connection:
        analysis = await db.latest_analysis(connection, repo=repo, number=number, head_sha=head_sha)
        fingerprints = await db.migration_fingerprints(connection, repo=repo, number=number)
    if analysis is not None and "error" in analysis.report:
        # The check failed with an error (its run says why): no verdict to gate on.
        logger.info("%s#%s: the check of %s failed; no gate", repo, number, head_sha)
        return
    if analysis is None and from_check:
        logger.info(
            "%s#%s: head moved to %s during the check; its check gates", repo, number, head_sha
        )
        return
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
    wanted = membership_checks(reviews, author, policy)
    memberships = await _memberships(ctx, api, wanted, refresh=refresh_memberships)
    findings = [finding_from_json(f) for f in analysis.report.get("findings", [])]
    files = await pull_request_files(api, repo, number)
    backup_settings = BackupSourceSettings.from_env()
    backup = await fetch_backup_status(backup_settings) if backup_settings.configured else None
    if isinstance(backup, BackupUnavailable):
        logger.warning("backup status unavailable: %s %s", backup.reason, backup.log_detail)
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
    # One POST: a failure between creating and completing would leave a run in progress.
    await create_completed_check_run(
        api,
        repo,
        name=check_name(base_ref),
        head_sha=head_sha,
        conclusion=result.conclusion,
        title=title,
        summary=summary,
        details_url=details_url,
    )
    _log_completed(ctx, check_name(base_ref), repo, pull, result.conclusion, title, analysis_id)


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
    cache = _github(ctx).memberships
    answers = {}
    for team, login in sorted(wanted):
        org, _, slug = team.partition("/")
        answers[(team, login)] = await cache.is_active_member(
            api, org, slug, login, refresh=refresh
        )
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
    the sandbox, for a fork: only the head the writer saw when commenting); anyone else one
    polite reply and nothing else."""
    _set_delivery(delivery_id)
    api = _installation(ctx, installation_id)
    permission = await collaborator_permission(api, repo, commenter)
    if not can_write(permission):
        await _refuse_once(api, repo, number, commenter)
        return
    pull = await get_pull(api, repo, number)
    head_sha = pull["head"]["sha"]
    from_fork = (pull["head"].get("repo") or {}).get("full_name") != repo
    if from_fork and not await _head_unchanged_since(ctx, repo, number, head_sha, delivery_id):
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
                refresh_memberships=True,
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
