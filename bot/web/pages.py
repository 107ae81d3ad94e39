"""The reviewer's report page, `GET /runs/{id}?token=<hmac>`, server-rendered (Jinja2).

Written for a product owner first and an engineer second: the verdict in one sentence,
the approvals, the checklist, each finding with its explanation and safe alternative, the
rollback plan and the emergency procedure; then the lock timeline of the sandbox run, the
schema diff, the SQL linked to GitHub, and what the sandbox ran under.

Access: the token is an HMAC of the id (bot.web.tokens); a wrong or missing token answers
exactly like an unknown id, 404, so the page never confirms that a run exists. Every
response carries a strict Content-Security-Policy (no script at all; styles only from the
app's own stylesheet, so the lock bars' widths are classes of that stylesheet, computed
here) and all repository-derived text goes through Jinja2's autoescaping.

`add_report_routes(app, config)` registers the page and its stylesheet. What the page says
is its view model, `bot.web.view`; this module serves and renders it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import jinja2
import markupsafe
from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from bot.settings import Settings
from bot.store.pages import RunRecord, load_run
from bot.web.tokens import page_key, token_matches
from bot.web.view import build_view

STATIC_DIR = Path(__file__).with_name("static")
TEMPLATES_DIR = Path(__file__).with_name("templates")
STYLESHEET_PATH = "/static/migsafe-report.css"
MAX_ID_DIGITS = 18  # bigint
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
PoolSource = Callable[[], AsyncConnectionPool]


@dataclass(frozen=True)
class PageConfig:
    key: bytes  # the token key (bot.web.tokens.page_key)
    github_web_url: str  # e.g. https://github.com, or a GHES host
    pool: PoolSource  # the process's pool, looked up per request (it opens after start-up)


CONFIG_KEY = web.AppKey("report_pages", PageConfig)


def add_report_routes(app: web.Application, config: PageConfig) -> None:
    app[CONFIG_KEY] = config
    app.router.add_get("/runs/{id}", run_page)
    app.router.add_get(STYLESHEET_PATH, stylesheet)


def page_config(settings: Settings, pool: PoolSource) -> PageConfig:
    return PageConfig(page_key(settings), github_web_url(settings.github_api_url), pool)


def github_web_url(api_url: str) -> str:
    """The web host of a GitHub API URL: api.github.com -> github.com; GHES
    `https://ghe.example.com/api/v3` -> `https://ghe.example.com`."""
    parts = urlsplit(api_url)
    host = parts.netloc
    if host == "api.github.com":
        return "https://github.com"
    if host.startswith("api.") and parts.path.strip("/") == "":  # GHE.com: api.<name>.ghe.com
        host = host.removeprefix("api.")
    return f"{parts.scheme}://{host}"


# -- handlers ---------------------------------------------------------------------------------


async def run_page(request: web.Request) -> web.Response:
    config = request.app[CONFIG_KEY]
    raw_id = request.match_info["id"]
    if not raw_id.isdigit() or len(raw_id) > MAX_ID_DIGITS:
        return not_found()
    analysis_id = int(raw_id)
    if not token_matches(config.key, analysis_id, request.query.get("token")):
        return not_found()
    async with config.pool().connection() as connection:
        run = await load_run(connection, analysis_id)
    if run is None:
        return not_found()
    html = render_run_page(run, github_web=config.github_web_url, now=datetime.now(UTC))
    return web.Response(
        text=html,
        content_type="text/html",
        charset="utf-8",
        headers={**SECURITY_HEADERS, "Cache-Control": "no-store"},
    )


async def stylesheet(request: web.Request) -> web.Response:
    return web.Response(
        body=_stylesheet_bytes(),
        content_type="text/css",
        charset="utf-8",
        headers={**SECURITY_HEADERS, "Cache-Control": "public, max-age=3600"},
    )


def not_found() -> web.Response:
    """The same answer for an unknown id, a wrong token and a missing one."""
    return web.Response(
        text=_environment().get_template("not_found.html").render(stylesheet=STYLESHEET_PATH),
        status=404,
        content_type="text/html",
        charset="utf-8",
        headers={**SECURITY_HEADERS, "Cache-Control": "no-store"},
    )


@cache
def _stylesheet_bytes() -> bytes:
    return (STATIC_DIR / "migsafe-report.css").read_bytes()


@cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,  # every template, whatever its name: repository text is hostile
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["code_spans"] = code_spans
    return environment


_CODE_SPAN = re.compile(r"`([^`\n]+)`")


def code_spans(text: object) -> markupsafe.Markup:
    """Text with its `code spans` as <code>: escaped first, so only our tag is markup."""
    escaped = str(markupsafe.escape(str(text)))
    return markupsafe.Markup(_CODE_SPAN.sub(r"<code>\1</code>", escaped))


def render_run_page(run: RunRecord, *, github_web: str, now: datetime) -> str:
    view = build_view(run, github_web=github_web, now=now)
    return _environment().get_template("run.html").render(view=view, stylesheet=STYLESHEET_PATH)
