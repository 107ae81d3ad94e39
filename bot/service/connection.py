"""The worker process's GitHub connection: one HTTP session, installation token cache and
team membership cache per GitHub App, with every response counted in `bot.metrics`; and
the App's installations coming and going."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiohttp

from bot import metrics
from bot.github.auth import AppCredentials, InstallationTokens
from bot.github.client import GitHub, InstallationAPI, delivery_id
from bot.github.teams import TeamMemberships
from bot.jobs import ServiceContext

logger = logging.getLogger("migsafe.service")


@dataclass
class GitHubServices:
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


_services: dict[tuple[str, int], GitHubServices] = {}


def github_services(ctx: ServiceContext) -> GitHubServices:
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
        _services[key] = GitHubServices(session, github, TeamMemberships())
    return _services[key]


async def bot_login(ctx: ServiceContext) -> str:
    """migsafe's own login on GitHub: only its comments are ever edited or deleted."""
    services = github_services(ctx)
    if services.bot_login is None:
        app = await services.github.app().getitem("/app")
        services.bot_login = f"{app['slug']}[bot]"
    return services.bot_login


async def close_github_sessions() -> None:
    """Close this process's GitHub sessions (at shutdown; tests between event loops)."""
    while _services:
        _, services = _services.popitem()
        await services.session.close()


def installation(ctx: ServiceContext, installation_id: int | None) -> InstallationAPI:
    if installation_id is None:
        raise RuntimeError("the delivery names no installation: migsafe cannot act on it")
    return github_services(ctx).github.installation(
        installation_id, metrics=_PrometheusCalls(installation_id)
    )


def set_delivery(value: str) -> None:
    """Name the delivery a job works for in the GitHub client's log lines."""
    delivery_id.set(value)


async def record_installation(
    ctx: ServiceContext, *, installation_id: int, action: str, delivery_id: str
) -> None:
    """The App was installed, suspended, removed...: the delivery row is the record; this
    says it in the log."""
    set_delivery(delivery_id)
    logger.info("installation %s: %s", installation_id, action)
