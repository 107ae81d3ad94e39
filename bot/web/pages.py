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

`add_report_routes(app, config)` registers the page and its stylesheet.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
import markupsafe
from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from bot.report.plan import RollbackPlan, rollback_plan
from bot.report.sandbox_view import mode_name
from bot.settings import Settings
from bot.store.pages import RunRecord, backup_from_gate, contacts_from_gate, load_run
from bot.web.tokens import page_key, token_matches

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
TIMEOUT_RULES = (
    "missing-lock-timeout",
    "missing-statement-timeout",
    "lock-timeout-not-set",
    "statement-timeout-not-set",
)
# What a family of findings means, in words for someone who does not read SQL.
FAMILY_WORDS = {
    "destructive": "destroys or rewrites existing data",
    "timeout": "can wait on locks or run without a time limit",
    "locking": "locks tables the application uses",
    "compatibility": "breaks the application still running during the deploy",
    "security": "weakens row level security",
    "revision": "cannot be applied or rolled back cleanly",
    "meta": "could not be fully analysed",
}
_LOW_LOCKS = ("AccessShareLock", "RowShareLock")
_STRONG_LOCKS = ("AccessExclusiveLock", "ExclusiveLock")
_SHARE_LOCKS = ("ShareLock", "ShareRowExclusiveLock", "ShareUpdateExclusiveLock")
SEVERITY_ORDER = {"error": 0, "warning": 1, "notice": 2}

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


# -- the view ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    label: str
    url: str | None


@dataclass(frozen=True)
class CheckItem:
    name: str
    ok: bool | None  # None: not needed here, recommended only, or not evaluated yet
    detail: str

    @property
    def mark(self) -> str:
        return {True: "✓", False: "✗", None: "\u2013"}[self.ok]

    @property
    def css(self) -> str:
        return {True: "ok", False: "bad", None: "na"}[self.ok]


@dataclass(frozen=True)
class FindingView:
    rule: str
    severity: str
    message: str
    place: Link | None
    summary: str | None
    explanation: str | None
    advice: str | None
    suppressed: bool
    suppression_reason: str | None
    approval_roles: list[str]
    statement: str | None


@dataclass(frozen=True)
class StatementView:
    number: int
    sql: str
    place: Link | None
    revision: str | None


@dataclass(frozen=True)
class LockBar:
    relation: str
    mode: str
    strength: str  # strong | share | row: the bar's colour
    left: int  # percent of the timeline, a stylesheet class each
    width: int
    start_ms: str
    held: str
    first: int  # statement numbers (1-based) in the trace table
    last: int
    first_place: Link | None
    last_place: Link | None


@dataclass(frozen=True)
class TraceRow:
    number: int
    start_ms: str
    duration: str
    sql: str
    place: Link | None
    locks: list[str]
    rewritten: list[str]
    lock_timeout: str | None
    statement_timeout: str | None
    error: str | None


@dataclass
class RunView:
    run: RunRecord
    title: str
    tone: str  # ok | wait | fail
    sentence: str
    environment: str
    commit: Link
    pull: Link
    created: str
    gate: dict[str, Any] | None
    approvals_required: list[str]
    checklist: list[CheckItem]
    findings: list[FindingView]
    plan: RollbackPlan | None
    sandbox_ran: bool
    sandbox_skipped: str | None
    sandbox_heading: str
    steps: list[CheckItem]
    timeline: list[LockBar]
    timeline_total: str
    trace: list[TraceRow]
    schema_diff: list[str]
    rollback_diff: list[str]
    upgrade: list[StatementView]
    downgrade: list[StatementView]
    upgrade_text: str
    downgrade_text: str
    dry_run_error: str | None
    protections: list[str]
    dry_run_protections: list[str]
    revisions: list[dict[str, Any]] = field(default_factory=list)


def build_view(run: RunRecord, *, github_web: str, now: datetime) -> RunView:
    report, gate = run.report, run.gate
    links = _Links(github_web, run.repo, run.head_sha)
    sandbox = report.get("sandbox") or {}
    dry_run = report.get("dry_run") or {}
    empty = not report
    tone, sentence = verdict(report, gate)
    statements = dry_run.get("statements") or []
    return RunView(
        run=run,
        title=f"{run.repo}#{run.number}",
        tone=tone,
        sentence=sentence,
        environment=str(report.get("environment") or (gate or {}).get("environment") or "—"),
        commit=Link(run.head_sha[:12], links.commit()),
        pull=Link(f"{run.repo}#{run.number}", links.pull(run.number)),
        created=run.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        gate=gate,
        approvals_required=[str(r) for r in report.get("approvals_required") or []],
        checklist=[] if empty else checklist(report, gate),
        findings=_findings(report, links),
        plan=None
        if empty
        else rollback_plan(
            report, contacts=contacts_from_gate(gate), backup=backup_from_gate(gate), now=now
        ),
        sandbox_ran=bool(sandbox.get("ran")),
        sandbox_skipped=sandbox.get("skipped_reason"),
        sandbox_heading=_sandbox_heading(sandbox),
        steps=[
            CheckItem(
                str(s.get("name")),
                {"passed": True, "failed": False}.get(str(s.get("outcome"))),
                _step_detail(s),
            )
            for s in sandbox.get("steps") or []
        ],
        timeline=lock_timeline(sandbox, links),
        timeline_total=_duration(_timeline_bounds(sandbox)[1]),
        trace=_trace(sandbox, links),
        schema_diff=[str(line) for line in sandbox.get("schema_diff") or []],
        rollback_diff=[str(line) for line in sandbox.get("rollback_diff") or []],
        upgrade=_statements(statements, "upgrade", links),
        downgrade=_statements(statements, "downgrade", links),
        upgrade_text=str(dry_run.get("upgrade_sql") or ""),
        downgrade_text=str(dry_run.get("downgrade_sql") or ""),
        dry_run_error=dry_run.get("error"),
        protections=[str(p) for p in sandbox.get("protections") or []],
        dry_run_protections=[str(p) for p in dry_run.get("protections") or []],
        revisions=[r for r in report.get("revisions") or [] if r.get("new")],
    )


def verdict(report: Mapping[str, Any], gate: Mapping[str, Any] | None) -> tuple[str, str]:
    """(tone, the verdict and why in one sentence)."""
    if not report:
        return "ok", "Nothing to review: this pull request changes no migration."
    errors = [
        f
        for f in report.get("findings") or []
        if f.get("severity") == "error" and not f.get("suppressed")
    ]
    approvals = _approval_clause(report, gate)
    if errors:
        families = [
            ((report.get("rules") or {}).get(f["rule"]) or {}).get("family", "meta") for f in errors
        ]
        words = list(dict.fromkeys(FAMILY_WORDS.get(family, family) for family in families))
        count = f"{len(errors)} error" + ("" if len(errors) == 1 else "s")
        sentence = f"Not safe to merge yet: this change {_and(words)} ({count} to fix first)"
        return "fail", sentence + (f"; {approvals}" if approvals else "") + "."
    if gate is not None and gate.get("conclusion") != "success":
        return "wait", f"No error found, but the merge is {_lower_first(gate['sentence'])}"
    if gate is None and report.get("approvals_required"):
        return "wait", f"No error found; {approvals}."
    done = f" {gate['sentence']}" if gate is not None else ""
    return "ok", f"Safe to merge: migsafe found nothing that blocks this change.{done}"


def _approval_clause(report: Mapping[str, Any], gate: Mapping[str, Any] | None) -> str:
    if gate is not None:
        missing = [r for r in gate.get("roles") or [] if r.get("missing")]
        if not missing:
            return ""
        return f"it also needs approval from {_and([str(r['role']) for r in missing])}"
    roles = [str(r) for r in report.get("approvals_required") or []]
    if not roles:
        return ""
    return f"it needs approval from {_and(roles)} (the approvals check has not run yet)"


def checklist(report: Mapping[str, Any], gate: Mapping[str, Any] | None) -> list[CheckItem]:
    """The environment's checklist: timeouts from the findings and the sandbox, the rest
    (documentation, ADR, maintenance window, backup) from the gate's procedure."""
    items = [_timeouts_item(report)]
    if gate is None:
        items.append(
            CheckItem(
                "Backup, maintenance window, ADR",
                None,
                "not evaluated yet: the approvals check runs after this analysis",
            )
        )
        return items
    for item in gate.get("procedure") or []:
        items.append(CheckItem(str(item.get("name")), item.get("ok"), str(item.get("detail"))))
    return items


def _timeouts_item(report: Mapping[str, Any]) -> CheckItem:
    missing = [f for f in report.get("findings") or [] if f.get("rule") in TIMEOUT_RULES]
    active = [f for f in missing if not f.get("suppressed")]
    if active:
        places = list(dict.fromkeys(_place_text(f) or str(f.get("rule")) for f in active))
        shown = ", ".join(places[:5]) + (f" and {len(places) - 5} more" if len(places) > 5 else "")
        blocking = any(f.get("severity") == "error" for f in active)
        detail = f"lock_timeout / statement_timeout not set before: {shown}"
        return CheckItem("Timeouts", False if blocking else None, detail)
    seen = _observed_timeouts(report.get("sandbox") or {})
    detail = "every lock-taking statement runs with lock_timeout and statement_timeout set"
    if seen:
        detail += f" (seen in the sandbox: {seen})"
    return CheckItem("Timeouts", True, detail)


def _observed_timeouts(sandbox: Mapping[str, Any]) -> str:
    pairs = {
        (s.get("lock_timeout"), s.get("statement_timeout")) for s in sandbox.get("trace") or []
    }
    if len(pairs) != 1:
        return ""
    lock, statement = next(iter(pairs))
    if lock is None or statement is None:
        return ""
    return f"lock_timeout {lock}, statement_timeout {statement}"


# -- the lock timeline ------------------------------------------------------------------------


def lock_timeline(sandbox: Mapping[str, Any], links: _Links) -> list[LockBar]:
    """One bar per lock that blocks something (SHARE and up, ROW EXCLUSIVE), placed on the
    run's time axis: from the statement that took it until the transaction ended."""
    trace = sandbox.get("trace") or []
    start, total = _timeline_bounds(sandbox)
    bars = []
    for span in sandbox.get("locks") or []:
        relation, mode = str(span.get("relation") or ""), str(span.get("mode") or "")
        first, last = int(span.get("first_statement", 0)), int(span.get("last_statement", 0))
        if mode in _LOW_LOCKS or relation.isdigit() or relation.startswith("pg_toast."):
            continue
        if not 0 <= first < len(trace) or not 0 <= last < len(trace):
            continue
        taken = float(trace[first].get("start_s") or 0.0) - start
        held = float(span.get("held_s") or 0.0)
        left, width = bar_geometry(taken, held, total)
        bars.append(
            LockBar(
                relation=relation,
                mode=mode_name(mode),
                strength=_strength(mode),
                left=left,
                width=width,
                start_ms=_duration(taken),
                held=_duration(held),
                first=first + 1,
                last=last + 1,
                first_place=links.place(trace[first].get("path"), trace[first].get("line")),
                last_place=links.place(trace[last].get("path"), trace[last].get("line")),
            )
        )
    return sorted(bars, key=lambda b: (b.first, -_rank(b.strength), b.relation))


def bar_geometry(start_s: float, held_s: float, total_s: float) -> tuple[int, int]:
    """(left, width) in whole percent: every bar at least 1 % wide and inside the axis."""
    if total_s <= 0:
        return 0, 100
    # Rounded to 1e-6 first: 0.05 / 0.2 * 100 must be 25, not 24.999999999999996.
    left = min(99, max(0, math.floor(round(start_s / total_s * 100, 6))))
    width = max(1, math.ceil(round(held_s / total_s * 100, 6)))
    return left, min(width, 100 - left)


def _timeline_bounds(sandbox: Mapping[str, Any]) -> tuple[float, float]:
    """(when the first statement started, the axis length in seconds)."""
    trace = sandbox.get("trace") or []
    if not trace:
        return 0.0, 0.0
    start = min(float(s.get("start_s") or 0.0) for s in trace)
    end = max(float(s.get("start_s") or 0.0) + float(s.get("duration_s") or 0.0) for s in trace)
    for span in sandbox.get("locks") or []:
        first = int(span.get("first_statement", 0))
        if 0 <= first < len(trace):
            taken = float(trace[first].get("start_s") or 0.0)
            end = max(end, taken + float(span.get("held_s") or 0.0))
    return start, end - start


def _strength(mode: str) -> str:
    if mode in _STRONG_LOCKS:
        return "strong"
    return "share" if mode in _SHARE_LOCKS else "row"


def _rank(strength: str) -> int:
    return {"strong": 2, "share": 1}.get(strength, 0)


def _trace(sandbox: Mapping[str, Any], links: _Links) -> list[TraceRow]:
    trace = sandbox.get("trace") or []
    start, _ = _timeline_bounds(sandbox)
    return [
        TraceRow(
            number=index + 1,
            start_ms=_duration(float(s.get("start_s") or 0.0) - start),
            duration=_duration(float(s.get("duration_s") or 0.0)),
            sql=str(s.get("sql") or ""),
            place=links.place(s.get("path"), s.get("line")),
            locks=[
                f"{lock.get('relation')} {mode_name(str(lock.get('mode')))}"
                for lock in s.get("locks") or []
                if lock.get("mode") not in _LOW_LOCKS
            ],
            rewritten=[str(t) for t in s.get("rewritten") or []],
            lock_timeout=_setting(s.get("lock_timeout")),
            statement_timeout=_setting(s.get("statement_timeout")),
            error=s.get("error"),
        )
        for index, s in enumerate(trace)
    ]


# -- findings and SQL -------------------------------------------------------------------------


def _findings(report: Mapping[str, Any], links: _Links) -> list[FindingView]:
    rules = report.get("rules") or {}
    ordered = sorted(
        report.get("findings") or [],
        key=lambda f: (
            bool(f.get("suppressed")),
            SEVERITY_ORDER.get(str(f.get("severity")), 3),
            str(f.get("path") or "\uffff"),
            int(f.get("line") or 0),
        ),
    )
    views = []
    for f in ordered:
        rule = rules.get(f.get("rule")) or {}
        views.append(
            FindingView(
                rule=str(f.get("rule")),
                severity=str(f.get("severity")),
                message=str(f.get("message") or ""),
                place=links.place(f.get("path"), f.get("line")),
                summary=rule.get("summary"),
                explanation=rule.get("explanation"),
                advice=f.get("advice"),
                suppressed=bool(f.get("suppressed")),
                suppression_reason=f.get("suppression_reason"),
                approval_roles=[str(r) for r in f.get("approval_roles") or []],
                statement=f.get("statement"),
            )
        )
    return views


def _statements(
    statements: Sequence[Mapping[str, Any]], phase: str, links: _Links
) -> list[StatementView]:
    return [
        StatementView(
            number=int(s.get("index", 0)) + 1,
            sql=str(s.get("sql") or ""),
            place=links.place(s.get("path"), s.get("line")),
            revision=s.get("revision"),
        )
        for s in statements
        if s.get("phase") == phase
    ]


class _Links:
    """Links to the repository on GitHub (or GHES) at the analysed commit."""

    def __init__(self, web: str, repo: str, sha: str) -> None:
        self.base = f"{web.rstrip('/')}/{quote(repo, safe='/')}"
        self.sha = quote(sha, safe="")

    def commit(self) -> str:
        return f"{self.base}/commit/{self.sha}"

    def pull(self, number: int) -> str:
        return f"{self.base}/pull/{number}"

    def place(self, path: object, line: object) -> Link | None:
        if not isinstance(path, str) or not path:
            return None
        number = line if isinstance(line, int) and line > 0 else None
        label = f"{path}:{number}" if number else path
        anchor = f"#L{number}" if number else ""
        return Link(label, f"{self.base}/blob/{self.sha}/{quote(path, safe='/')}{anchor}")


# -- helpers ----------------------------------------------------------------------------------


def _sandbox_heading(sandbox: Mapping[str, Any]) -> str:
    if not sandbox.get("ran"):
        return "The sandbox did not run"
    version = sandbox.get("server_version") or ""
    on = f" on PostgreSQL {version}" if version else ""
    return f"Sandbox run{on} ({float(sandbox.get('duration_s') or 0.0):.1f} s)"


def _step_detail(step: Mapping[str, Any]) -> str:
    detail = str(step.get("detail") or "")
    lines = [line for line in detail.splitlines() if line.strip()]
    return lines[0] if lines else ""


def _setting(value: object) -> str | None:
    """A timeout as PostgreSQL reports it; 0 disables it."""
    if value is None:
        return None
    return "0 (no limit)" if str(value) == "0" else str(value)


def _place_text(finding: Mapping[str, Any]) -> str | None:
    path, line = finding.get("path"), finding.get("line")
    if not path:
        return None
    return f"{path}:{line}" if line else str(path)


def _duration(seconds: float) -> str:
    if seconds < 1:
        precise = 0 < seconds < 0.001  # sub-millisecond statements: one decimal
        return f"{seconds * 1000:.1f} ms" if precise else f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def _and(items: Sequence[str]) -> str:
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text else text
