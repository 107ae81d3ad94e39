"""What the check and the gate share: the base branch's policy, the report page a check run
links to, and the one log line each completed check run leaves for the operator."""

from __future__ import annotations

import logging

from bot.analysis.catalog import RULES
from bot.github.client import InstallationAPI
from bot.github.pulls import file_at_ref
from bot.jobs import ServiceContext
from bot.policy.config import POLICY_PATH, Policy, parse_policy
from bot.service.pull import PullRequest
from bot.service_logging import one_line_cause
from bot.web.tokens import page_url

logger = logging.getLogger("migsafe.service")


async def base_policy(api: InstallationAPI, pull: PullRequest) -> Policy:
    """The policy file of the BASE branch: a pull request cannot change its own rules."""
    raw = await file_at_ref(api, pull.repo, POLICY_PATH, pull.base_sha)
    if raw is None:
        return Policy.default()
    source = f"{pull.base_ref}:{POLICY_PATH}"
    return parse_policy(raw.decode("utf-8", "replace"), source, known_rule_ids=set(RULES))


def details_url(ctx: ServiceContext, analysis_id: int | None, pull: PullRequest) -> str:
    """The run's report page, or the pull request where migsafe knows no public URL."""
    return report_url(ctx, analysis_id) or pull.html_url


def report_url(ctx: ServiceContext, analysis_id: int | None) -> str | None:
    """The report page's URL with its token, None without MIGSAFE_PUBLIC_URL."""
    return page_url(ctx.settings, analysis_id) if ctx.settings and analysis_id else None


def log_completed(
    ctx: ServiceContext,
    name: str,
    pull: PullRequest,
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
    page = report_url(ctx, analysis_id) or "none (MIGSAFE_PUBLIC_URL is not set)"
    cause = f"; {one_line_cause(error)}, not retried" if error is not None else ""
    logger.log(
        logging.WARNING if error is not None else logging.INFO,
        "%s#%s: %s of %s completed: %s (%s)%s; report %s",
        pull.repo,
        pull.number,
        name,
        pull.head_sha,
        conclusion,
        title,
        cause,
        page,
    )
