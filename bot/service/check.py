"""The check of a pull request: the `migsafe` check run of its head, with annotations,
review comments and the stored analysis, then the approval gate (`bot.service.gate`).

The analysis runs in a worker thread (`run_check` is blocking and starts child processes)
on the base and head trees downloaded into a temporary folder.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from gidgethub import BadRequest, RateLimitExceeded

from bot.analysis.catalog import RULES
from bot.check import CheckOptions, run_check
from bot.errors import UserError
from bot.github.checks import (
    annotations_for,
    complete_check_run,
    conclusion_for,
    create_check_run,
    update_check_run,
)
from bot.github.client import (
    InstallationAPI,
    RateLimited,
    ResponseTooLarge,
    get_list,
    repo_vars,
)
from bot.github.comments import review_comments_for, sync_review_comments
from bot.github.pulls import (
    DEFAULT_MIGRATION_GLOBS,
    MAX_PR_FILES,
    pull_request_files,
    touches_migrations,
)
from bot.github.tarball import UnsafeArchive, download_tree
from bot.jobs import MAX_ATTEMPTS, PullRequestJob, ServiceContext
from bot.migrations.inputs import approval_fingerprint
from bot.policy.config import Policy
from bot.policy.environments import environment_for_branch
from bot.report import verdict
from bot.report.json_report import to_document
from bot.report.markdown import render_markdown
from bot.report.plan import contacts_from_policy
from bot.result import CheckResult
from bot.service import gate
from bot.service.connection import bot_login, installation, set_delivery
from bot.service.pull import PullRequest, fetch_pull_request
from bot.service.runs import base_policy, details_url, log_completed
from bot.store import db
from bot.store import pages as pages_store

logger = logging.getLogger("migsafe.service")

CHECK_NAME = "migsafe"


def check_run_name(base_branch: str) -> str:
    """`migsafe (main)`: the check run carries the base branch, as the gate's does. Runs
    attach to a commit, and branch protection reads the latest run of a name: a second pull
    request of the same head into a laxer branch must not turn the protected branch's
    check green."""
    return f"{CHECK_NAME} ({base_branch.removeprefix('refs/heads/')})"


FORK_SANDBOX_SKIPPED = (
    "the pull request comes from a fork; a writer's `/migsafe rerun` runs it for this commit"
)


async def check_pull_request(ctx: ServiceContext, **job: Any) -> None:
    """The job handler: `job` holds a `PullRequestJob`'s fields."""
    await check(ctx, PullRequestJob.from_job(job))


async def check(ctx: ServiceContext, job: PullRequestJob) -> None:
    """Check `job.head_sha` of its pull request: the `migsafe` check run, annotations, review
    comments, the stored analysis, then the approval gate."""
    set_delivery(job.delivery_id)
    api = installation(ctx, job.installation_id)
    pull = await fetch_pull_request(api, job.repo, job.pull_number)
    if pull.state != "open" or pull.head_sha != job.head_sha:
        logger.info("%s: %s is no longer the open head; skipped", pull.name, job.head_sha)
        return
    check_run_id = await _start_check_run(ctx, api, pull)
    try:
        verdict_stored = await _check(ctx, api, pull, check_run_id)
    except Exception as error:
        if not is_permanent(error):
            # The queue retries the job. Meanwhile the run fails (GitHub counts `neutral` as
            # passing): a crashed check must never let a pull request through.
            await _fail_crashed(ctx, api, pull, check_run_id, error)
            raise
        # One warning line (the run's completion): the cause, not retried, the report page.
        await _fail(ctx, api, pull, check_run_id, _COULD_NOT_FINISH, _permanent(error), error)
        logger.debug("%s: the traceback", pull.name, exc_info=error)
        return
    if verdict_stored:
        await gate.evaluate(ctx, replace(job, trigger=f"check ({job.trigger})"), from_check=True)


async def pull_requests_for_commit(
    ctx: ServiceContext, *, repo: str, head_sha: str, installation_id: int | None
) -> list[int]:
    """Open PRs of `repo` whose head is `head_sha` (a fork's check suite names none)."""
    api = installation(ctx, installation_id)
    pulls = await get_list(
        api,
        "/repos/{owner}/{repo}/pulls{?state,per_page}",
        {**repo_vars(repo), "state": "open"},
        iterable_key=None,
    )
    return sorted(int(p["number"]) for p in pulls if p["head"]["sha"] == head_sha)


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
    ctx: ServiceContext, api: InstallationAPI, pull: PullRequest, run_id: int, error: BaseException
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
    await complete_check_run(
        api, pull.repo, run_id, conclusion="failure", title=title, summary=summary
    )


async def _start_check_run(ctx: ServiceContext, api: InstallationAPI, pull: PullRequest) -> int:
    """The `migsafe` run of the head, in progress: the one a dead worker left in progress
    (its job is being retried: one run, not a stuck one beside a new one), else a new one."""
    app_id = ctx.settings.app_id if ctx.settings else None
    listed = await api.getitem(
        "/repos/{owner}/{repo}/commits/{ref}/check-runs{?check_name,status}",
        {
            **repo_vars(pull.repo),
            "ref": pull.head_sha,
            "check_name": check_run_name(pull.base_ref),
            "status": "in_progress",
        },
    )
    for run in listed.get("check_runs", []):
        if (run.get("app") or {}).get("id") == app_id and run.get("head_sha") == pull.head_sha:
            run_id = int(run["id"])
            await update_check_run(api, pull.repo, run_id, {"status": "in_progress"})
            return run_id
    return await create_check_run(
        api,
        pull.repo,
        name=check_run_name(pull.base_ref),
        head_sha=pull.head_sha,
        details_url=pull.html_url,
    )


async def _check(ctx: ServiceContext, api: InstallationAPI, pull: PullRequest, run_id: int) -> bool:
    """Check the head and complete the run; True when it stored a verdict the gate can use
    (False: the run failed with an error, stored as such; the gate is not evaluated)."""
    try:
        policy = await base_policy(api, pull)
    except UserError as error:
        title = "The policy file on the base branch is invalid"
        await _fail(ctx, api, pull, run_id, title, str(error))
        return False
    files = await pull_request_files(api, pull.repo, pull.number)
    globs = _migration_globs(policy)
    # GitHub lists at most MAX_PR_FILES files: beyond them a migration may hide.
    touched = len(files) >= MAX_PR_FILES or touches_migrations(files, globs)
    if not touched:
        analysis_id = await _store(ctx, pull, db.Analysis(pull.head_sha, None, "success", {}))
        title = "No migration changes"
        await complete_check_run(
            api,
            pull.repo,
            run_id,
            conclusion="success",
            title=title,
            summary=f"None of the {len(files)} changed files is a migration ({', '.join(globs)}).",
            details_url=details_url(ctx, analysis_id, pull),
        )
        log_completed(ctx, check_run_name(pull.base_ref), pull, "success", title, analysis_id)
        return True
    sandbox = await _sandbox_allowed(ctx, pull)
    tmp = await asyncio.to_thread(tempfile.mkdtemp, prefix="migsafe-pr-")
    try:
        base_tree = await download_tree(api, pull.repo, pull.base_sha, Path(tmp) / "base")
        head_tree = await download_tree(api, pull.repo, pull.head_sha, Path(tmp) / "head")
        options = CheckOptions(
            path=head_tree,
            base_tree=base_tree,
            policy=policy,
            environment=environment_for_branch(policy, pull.base_ref),
            environment_reason=f"the pull request's base branch {pull.base_ref}"
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
            await _fail(ctx, api, pull, run_id, title, str(error))
            return False
    finally:
        # Removing two repository trees takes a while: not in the event loop.
        await asyncio.to_thread(shutil.rmtree, tmp, True)
    if not sandbox and result.sandbox is None:
        result = replace(result, sandbox_skipped=FORK_SANDBOX_SKIPPED)
    conclusion = conclusion_for(result)
    analysis = db.Analysis(pull.head_sha, fingerprint, conclusion, to_document(result))
    analysis_id = await _store(ctx, pull, analysis)
    url = details_url(ctx, analysis_id, pull)
    login = await bot_login(ctx)
    await _publish(api, pull, run_id, result, policy, sandbox, url, login)
    log_completed(
        ctx, check_run_name(pull.base_ref), pull, conclusion, verdict(result), analysis_id
    )
    return True


async def _fail(
    ctx: ServiceContext,
    api: InstallationAPI,
    pull: PullRequest,
    run_id: int,
    title: str,
    message: str,
    error: BaseException | None = None,
) -> None:
    """Complete the run as failed with `message`, and store the failure as the head's
    analysis (so nothing defers a new check of this head: it would fail the same way).
    `error`: the exception that stopped the check for good, named in the log line."""
    report = {"error": {"title": title, "message": message}}
    analysis_id = await _store(ctx, pull, db.Analysis(pull.head_sha, None, "failure", report))
    await complete_check_run(
        api, pull.repo, run_id, conclusion="failure", title=title, summary=message
    )
    log_completed(ctx, check_run_name(pull.base_ref), pull, "failure", title, analysis_id, error)


async def _publish(
    api: InstallationAPI,
    pull: PullRequest,
    run_id: int,
    result: CheckResult,
    policy: Policy,
    sandbox: bool,
    details_url: str,
    bot_login: str | None,
) -> None:
    link_base = f"{pull.base_html_url}/blob/{pull.head_sha}/"
    summary = render_markdown(result, link_base=link_base, contacts=contacts_from_policy(policy))
    if not sandbox:
        summary = (
            "> The sandbox did not run: this pull request comes from a fork. Someone with "
            "write access can comment `/migsafe rerun` to run it for this commit.\n\n" + summary
        )
    await complete_check_run(
        api,
        pull.repo,
        run_id,
        conclusion=conclusion_for(result),
        title=verdict(result),
        summary=summary,
        annotations=annotations_for(result.findings),
        details_url=details_url,
    )
    wanted = review_comments_for(result.findings, RULES)
    await sync_review_comments(
        api, pull.repo, pull.number, pull.head_sha, wanted, bot_login=bot_login
    )


def _migration_globs(policy: Policy) -> list[str]:
    if policy.migration_paths is not None:
        return list(policy.migration_paths)
    location = policy.alembic.script_location
    return policy.migration_globs(location) if location else list(DEFAULT_MIGRATION_GLOBS)


async def _sandbox_allowed(ctx: ServiceContext, pull: PullRequest) -> bool:
    """Code from a fork reaches the sandbox only for a commit a writer asked for."""
    if not pull.from_fork:
        return True
    async with ctx.pool.connection() as connection:
        return await db.sandbox_approved(
            connection, repo=pull.repo, number=pull.number, head_sha=pull.head_sha
        )


async def _store(ctx: ServiceContext, pull: PullRequest, analysis: db.Analysis) -> int:
    """Keep the analysis (the gate reads it; its report page shows it); its id."""
    async with ctx.pool.connection() as connection:
        return await pages_store.record_analysis(
            connection, repo=pull.repo, number=pull.number, analysis=analysis
        )
