"""The report page GET /runs/{id}: content, escaping (read back with html.parser), the
token check, the security headers, the store (gates, retention) on a real PostgreSQL."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from typing import Any

import psycopg
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.errors import UserError
from bot.jobs import JobQueue
from bot.policy.approvals import GateVerdict, RoleStatus
from bot.policy.backup import BackupStatus
from bot.policy.procedure import ProcedureItem, Reason
from bot.report.plan import Contact
from bot.settings import Settings, load_settings
from bot.store import db
from bot.store import pages as store
from bot.web.pages import STYLESHEET_PATH, github_web_url
from bot.web.timeline import bar_geometry
from bot.web.tokens import derive_key, page_key, page_url, run_path, run_token
from bot.webhooks.app import build_web_app
from tests.service.conftest import SECRET, Recorder
from tests.statedb import query

# The service tests' PostgreSQL: a cluster, a migrated database per module, emptied per test.

Client = TestClient[Any, Any]
SHA = "0123456789abcdef0123456789abcdef01234567"
HOSTILE_PATH = 'migrations/versions/0002_"><script>alert(1)</script>.py'
HOSTILE_SQL = "INSERT INTO notes (body) VALUES ('<script>alert(2)</script>')"
HOSTILE_MESSAGE = "Dropping column accounts.<img src=x onerror=alert(3)> destroys its data."
SETTINGS = Settings(
    app_id=1,
    private_key="unused",
    webhook_secret=SECRET,
    github_api_url="https://api.github.com",
    public_url="https://migsafe.example.com",
)
NOW = datetime.datetime(2026, 11, 26, 12, 0, tzinfo=datetime.UTC)


# -- a report and a gate -----------------------------------------------------------------------


def trace_statement(sql: str, line: int, start_s: float, **extra: Any) -> dict[str, Any]:
    return {
        "sql": sql,
        "revision": "0002",
        "path": HOSTILE_PATH,
        "line": line,
        "start_s": start_s,
        "duration_s": 0.002,
        "locks": [],
        "rewritten": [],
        "lock_timeout": "30s",
        "statement_timeout": "5min",
        "error": None,
        **extra,
    }


def sample_report() -> dict[str, Any]:
    """A production check: a dropped column, its downgrade re-adding it empty, an
    ACCESS EXCLUSIVE lock held across a backfill. Names and SQL are hostile."""
    statements = [
        {
            "phase": "upgrade",
            "index": 0,
            "sql": "BEGIN",
            "revision": None,
            "path": None,
            "line": None,
        },
        {
            "phase": "upgrade",
            "index": 1,
            "sql": "ALTER TABLE accounts DROP COLUMN email",
            "revision": "0002",
            "path": HOSTILE_PATH,
            "line": 15,
        },
        {
            "phase": "upgrade",
            "index": 2,
            "sql": HOSTILE_SQL,
            "revision": "0002",
            "path": HOSTILE_PATH,
            "line": 16,
        },
        {
            "phase": "downgrade",
            "index": 0,
            "sql": "ALTER TABLE accounts ADD COLUMN email TEXT",
            "revision": "0002",
            "path": HOSTILE_PATH,
            "line": 20,
        },
    ]
    return {
        "migsafe_version": "0.1.0",
        "environment": "production",
        "exit_code": 1,
        "summary": {"errors": 2, "warnings": 1, "notices": 0, "suppressed": 0},
        "base": ["0001"],
        "heads": ["0002"],
        "revisions": [
            {
                "revision": "0002",
                "down_revision": "0001",
                "path": HOSTILE_PATH,
                "new": True,
                "message": "drop <b>email</b>",
            },
        ],
        "findings": [
            {
                "rule": "drop-column",
                "severity": "error",
                "path": HOSTILE_PATH,
                "line": 15,
                "revision": "0002",
                "statement": "ALTER TABLE accounts DROP COLUMN email",
                "message": HOSTILE_MESSAGE,
                "suppressed": False,
                "suppression_reason": None,
                "approval_roles": ["backend-lead", "product-owner"],
                "advice": "Stop reading the column in a release first, then drop it.",
                "phase": "upgrade",
                "source": "sql",
            },
            {
                "rule": "rollback-data-loss",
                "severity": "error",
                "path": None,
                "line": None,
                "revision": None,
                "statement": None,
                "message": "table public.accounts: the 3 seeded rows came back changed",
                "suppressed": False,
                "suppression_reason": None,
                "approval_roles": [],
                "advice": None,
                "phase": "downgrade",
                "source": "sandbox",
            },
            {
                "rule": "access-exclusive-lock",
                "severity": "warning",
                "path": HOSTILE_PATH,
                "line": 15,
                "revision": "0002",
                "statement": None,
                "message": "accounts is locked across `<script>alert(4)</script>`",
                "suppressed": False,
                "suppression_reason": None,
                "approval_roles": [],
                "advice": None,
                "phase": "upgrade",
                "source": "sandbox",
            },
        ],
        "approvals_required": ["backend-lead", "product-owner"],
        "dry_run": {
            "upgrade_sql": "BEGIN;\n...",
            "downgrade_sql": "BEGIN;\n...",
            "error": None,
            "protections": ["no network (unshare -n)"],
            "statements": statements,
        },
        "sandbox": {
            "ran": True,
            "skipped_reason": None,
            "server_version": "15.18",
            "duration_s": 1.8,
            "protections": ["network: none (new network namespace)", "<script>x</script>"],
            "steps": [
                {"name": "upgrade to head", "outcome": "passed", "duration_s": 0.4, "detail": None},
                {
                    "name": "rollback to the base",
                    "outcome": "failed",
                    "duration_s": 0.4,
                    "detail": "data lost in public.accounts",
                },
            ],
            "trace": [
                trace_statement(
                    "ALTER TABLE accounts DROP COLUMN email",
                    15,
                    0.100,
                    locks=[{"relation": "accounts", "mode": "AccessExclusiveLock"}],
                ),
                trace_statement(
                    HOSTILE_SQL,
                    16,
                    0.150,
                    locks=[{"relation": "notes", "mode": "RowExclusiveLock"}],
                ),
            ],
            "locks": [
                {
                    "relation": "accounts",
                    "mode": "AccessExclusiveLock",
                    "first_statement": 0,
                    "last_statement": 1,
                    "held_s": 0.2,
                },
                {
                    "relation": "notes",
                    "mode": "RowExclusiveLock",
                    "first_statement": 1,
                    "last_statement": 1,
                    "held_s": 0.15,
                },
                {
                    "relation": "accounts",
                    "mode": "AccessShareLock",
                    "first_statement": 0,
                    "last_statement": 1,
                    "held_s": 0.2,
                },
            ],
            "schema_diff": ["column public.accounts.email: removed"],
            "rollback_diff": [],
            "seeded": {"public.accounts": 3},
            "seed_failures": {},
        },
        "rules": {
            "drop-column": {
                "family": "destructive",
                "summary": "DROP COLUMN ...",
                "explanation": "Dropping a column destroys its data.",
            },
            "rollback-data-loss": {
                "family": "revision",
                "summary": "rows lost",
                "explanation": "Restoring a backup is the only way back.",
            },
        },
    }


def sample_gate() -> dict[str, Any]:
    verdict = GateVerdict(
        conclusion="action_required",
        environment="production",
        roles=[
            RoleStatus(
                "backend-lead",
                "acme/leads",
                1,
                ["alice"],
                0,
                [Reason("drop-column", HOSTILE_PATH, 15)],
            ),
            RoleStatus(
                "product-owner", "acme/po", 1, [], 1, [Reason("drop-column", HOSTILE_PATH, 15)]
            ),
        ],
        blocking_reviews=[],
        stale_approvals=[],
        procedure=[
            ProcedureItem("Destructive changes documented", False, "1 destructive operation"),
            ProcedureItem("Backup", True, "last backup 2 h ago"),
            ProcedureItem("Maintenance window", None, "not needed: no major change"),
        ],
    )
    backup = BackupStatus(NOW - datetime.timedelta(hours=2), None, "pgBackRest")
    return store.gate_document(
        verdict,
        base_branch="refs/heads/main",
        contacts=[Contact("backend-lead", "acme/leads"), Contact("devops-lead", "acme/sre")],
        backup=backup,
        evaluated_at=NOW,
    )


async def insert_run(
    conninfo: str, report: dict[str, Any], gate: dict[str, Any] | None = None
) -> int:
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as connection:
        analysis = db.Analysis(SHA, "fp", "failure", report)
        analysis_id = await store.record_analysis(
            connection, repo="acme/shop", number=42, analysis=analysis
        )
        if gate is not None:
            saved = await store.save_gate_for_head(
                connection, repo="acme/shop", number=42, head_sha=SHA, gate=gate
            )
            assert saved == analysis_id
    return analysis_id


# -- the app -----------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def client(state: str, aiohttp_client: Any) -> AsyncIterator[Client]:
    pool = await db.open_pool(state, max_size=3)
    queue = JobQueue(state, handlers=Recorder().handlers(), settings=SETTINGS)
    await queue.open(pool)
    yield await aiohttp_client(build_web_app(webhook_secret=SECRET, queue=queue))
    await queue.close()
    await pool.close()


VOID_ELEMENTS = {"br", "meta", "link", "img", "input", "hr", "wbr"}


class Page(HTMLParser):
    """The parsed page: tags with attributes, text per element id, all text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.by_id: dict[str, list[str]] = {}
        self._open: list[tuple[str, str | None]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag in VOID_ELEMENTS:
            return
        element_id = attributes.get("id")
        self._open.append((tag, element_id))
        if element_id:
            self.by_id.setdefault(element_id, [])

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        for _, element_id in self._open:
            if element_id:
                self.by_id[element_id].append(data)

    def section(self, element_id: str) -> str:
        return " ".join(" ".join(self.by_id[element_id]).split())

    def all_text(self) -> str:
        return "".join(self.text)

    def classes(self) -> list[str]:
        return [c for _, attrs in self.tags for c in (attrs.get("class") or "").split()]

    def hrefs(self) -> list[str]:
        return [str(attrs["href"]) for tag, attrs in self.tags if tag == "a" and attrs.get("href")]


async def fetch(client: Client, analysis_id: int) -> tuple[int, str, Any]:
    response = await client.get(run_path(page_key(SETTINGS), analysis_id))
    return response.status, await response.text(), response.headers


# -- content ------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_page_shows_verdict_approvals_checklist_findings_and_plan(
    client: Client, state: str
) -> None:
    analysis_id = await insert_run(state, sample_report(), sample_gate())
    status, html, _ = await fetch(client, analysis_id)
    assert status == 200
    page = Page(html)
    assert page.section("verdict").startswith(
        "Not safe to merge yet: this change destroys or rewrites existing data and cannot be "
        "applied or rolled back cleanly (2 errors to fix first); it also needs approval from "
        "product-owner."
    )
    roles = page.section("approval-roles")
    assert ".py:15 acme/leads 1 @alice 0 product-owner" in roles
    assert roles.endswith(".py:15 acme/po 1 nobody yet 1")
    checklist = page.section("checklist")
    assert "✓ Timeouts : every lock-taking statement runs with" in checklist
    assert "✗ Destructive changes documented : 1 destructive operation" in checklist
    assert "✓ Backup : last backup 2 h ago" in checklist
    assert "\u2013 Maintenance window : not needed" in checklist
    findings = page.section("findings")
    assert "Why it matters Dropping a column destroys its data." in findings
    assert "Safe alternative Stop reading the column in a release first" in findings
    plan = page.section("rollback")
    assert "Rollback is NOT safe." in plan
    assert "alembic downgrade 0001" in plan
    assert "The last backup finished" in plan and "(pgBackRest)" in plan
    assert "Contact: backend-lead (@acme/leads), devops-lead (@acme/sre)" in plan
    assert "1. Stop." not in plan  # an ordered list: the numbers are the browser's
    assert page.section("emergency").startswith("Stop. Cancel the deploy job.")


@pytest.mark.asyncio
async def test_the_lock_timeline_is_drawn_with_stylesheet_classes(
    client: Client, state: str
) -> None:
    analysis_id = await insert_run(state, sample_report())
    _, html, _ = await fetch(client, analysis_id)
    page = Page(html)
    bars = [attrs["class"] for tag, attrs in page.tags if "bar" in (attrs.get("class") or "")]
    # The axis runs 0.100 s → 0.300 s: accounts from 0 % for all of it, notes from 25 %.
    assert bars == ["bar strong l-0 w-100", "bar row l-25 w-75"]
    timeline = page.section("lock-timeline")
    assert "accounts ACCESS EXCLUSIVE" in timeline
    assert "held 200 ms from 0 ms: taken by statement 1" in timeline
    assert "ACCESS SHARE" not in timeline  # plain reads are not drawn
    assert not any(tag == "style" or "style" in attrs for tag, attrs in page.tags)


@pytest.mark.asyncio
async def test_sql_statements_link_to_their_file_and_line_on_github(
    client: Client, state: str
) -> None:
    analysis_id = await insert_run(state, sample_report())
    _, html, _ = await fetch(client, analysis_id)
    page = Page(html)
    quoted = "migrations/versions/0002_%22%3E%3Cscript%3Ealert%281%29%3C/script%3E.py"
    link = f"https://github.com/acme/shop/blob/{SHA}/{quoted}#L16"
    assert link in page.hrefs()
    assert all(href.startswith(("https://github.com/acme/shop/", "#")) for href in page.hrefs())
    sql = page.section("sql")
    assert "Upgrade (3 statements)" in sql and "Downgrade (1 statements)" in sql
    assert "added by Alembic" in sql  # BEGIN has no origin
    assert "column public.accounts.email: removed" in page.section("schema")
    assert "network: none (new network namespace)" in page.section("protections")


@pytest.mark.asyncio
async def test_hostile_names_and_sql_come_out_inert(client: Client, state: str) -> None:
    analysis_id = await insert_run(state, sample_report(), sample_gate())
    _, html, _ = await fetch(client, analysis_id)
    page = Page(html)
    tags = {tag for tag, _ in page.tags}
    assert "script" not in tags and "img" not in tags and "b" not in tags
    handlers = [name for _, attrs in page.tags for name in attrs if name.startswith("on")]
    assert handlers == []
    text = page.all_text()
    assert "<script>alert(1)</script>" in text  # shown as text, literally
    assert "<script>alert(2)</script>" in text
    assert "<img src=x onerror=alert(3)>" in text
    assert "<script>alert(4)</script>" in text  # inside a code span, still text
    assert "drop <b>email</b>" in text


@pytest.mark.asyncio
async def test_a_run_without_a_sandbox_or_gate_says_so(client: Client, state: str) -> None:
    report = sample_report()
    report["sandbox"] = {"ran": False, "skipped_reason": "not requested (--no-sandbox)"}
    report["findings"] = []
    analysis_id = await insert_run(state, report)
    _, html, _ = await fetch(client, analysis_id)
    page = Page(html)
    assert page.section("verdict") == (
        "No error found; it needs approval from backend-lead and product-owner (the "
        "approvals check has not run yet)."
    )
    assert "The sandbox did not run: not requested (--no-sandbox)" in page.section("locks")
    assert "Rollback not proven." in page.section("rollback")
    assert "not evaluated yet" in page.section("checklist")


@pytest.mark.asyncio
async def test_a_pull_request_without_migrations_has_nothing_to_review(
    client: Client, state: str
) -> None:
    analysis_id = await insert_run(state, {})
    status, html, _ = await fetch(client, analysis_id)
    assert status == 200
    assert Page(html).section("verdict") == (
        "Nothing to review: this pull request changes no migration."
    )


# -- access -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_page_is_served_with_a_strict_policy(client: Client, state: str) -> None:
    analysis_id = await insert_run(state, sample_report())
    status, _, headers = await fetch(client, analysis_id)
    assert status == 200
    assert headers["Content-Security-Policy"] == (
        "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    )
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Content-Type"] == "text/html; charset=utf-8"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "suffix",
    [
        "?token=wrong",
        "",
        "?token=",
        "?token=%C3%A9",
        "?token={other}",  # the token of another run
    ],
)
async def test_a_wrong_or_missing_token_is_404_like_an_unknown_run(
    client: Client, state: str, suffix: str
) -> None:
    analysis_id = await insert_run(state, sample_report())
    other = run_token(page_key(SETTINGS), analysis_id + 1)
    response = await client.get(f"/runs/{analysis_id}{suffix.format(other=other)}")
    unknown = await client.get(run_path(page_key(SETTINGS), analysis_id + 1))
    assert response.status == unknown.status == 404
    assert await response.text() == await unknown.text()
    assert "Content-Security-Policy" in response.headers
    assert "acme" not in await response.text()


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/runs/abc", "/runs/-1", "/runs/" + "9" * 30])
async def test_malformed_ids_are_404(client: Client, path: str) -> None:
    assert (await client.get(path)).status == 404


@pytest.mark.asyncio
async def test_the_stylesheet_is_served_from_the_app(client: Client) -> None:
    response = await client.get(STYLESHEET_PATH)
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/css; charset=utf-8"
    css = await response.text()
    assert all(f".l-{n} {{ left: {n}%; }}" in css for n in range(100))
    assert all(f".w-{n} {{ width: {n}%; }}" in css for n in range(1, 101))


def test_without_settings_the_app_has_no_report_pages(state_conninfo: str) -> None:
    queue = JobQueue(state_conninfo, handlers=Recorder().handlers())
    app = build_web_app(webhook_secret=SECRET, queue=queue)
    assert not any(r.canonical == "/runs/{id}" for r in app.router.resources())


# -- tokens and settings ----------------------------------------------------------------------


def test_the_details_url_carries_the_runs_token() -> None:
    url = page_url(SETTINGS, 7)
    assert url == f"https://migsafe.example.com/runs/7?token={run_token(page_key(SETTINGS), 7)}"
    assert page_url(Settings(app_id=1, private_key="", webhook_secret=SECRET), 7) is None


def test_the_page_key_is_the_page_secret_or_derived_from_the_webhook_secret() -> None:
    derived = page_key(SETTINGS)
    assert derived == derive_key(SECRET) and derived != SECRET.encode()
    assert len(derived) == 32
    own = Settings(app_id=1, private_key="", webhook_secret=SECRET, page_secret="p" * 32)
    assert page_key(own) == b"p" * 32
    assert run_token(derived, 1) != run_token(page_key(own), 1)


def _rsa_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem.decode()


def test_a_short_page_secret_is_one_clear_error() -> None:
    environ = {"MIGSAFE_PAGE_SECRET": "short"}
    environ |= {"MIGSAFE_APP_ID": "1", "MIGSAFE_PRIVATE_KEY": _rsa_pem()}
    environ |= {"MIGSAFE_WEBHOOK_SECRET": "s"}
    with pytest.raises(UserError, match="MIGSAFE_PAGE_SECRET must be at least 32 characters"):
        load_settings(environ)
    assert load_settings({**environ, "MIGSAFE_PAGE_SECRET": "x" * 32}).page_secret == "x" * 32
    with pytest.raises(UserError, match="MIGSAFE_REPORT_RETENTION_DAYS must be a positive"):
        load_settings(
            {
                "MIGSAFE_APP_ID": "1",
                "MIGSAFE_PRIVATE_KEY": _rsa_pem(),
                "MIGSAFE_WEBHOOK_SECRET": "s",
                "MIGSAFE_REPORT_RETENTION_DAYS": "0",
            }
        )


@pytest.mark.parametrize(
    ("api", "web"),
    [
        ("https://api.github.com", "https://github.com"),
        ("https://ghe.example.com/api/v3", "https://ghe.example.com"),
        ("https://api.acme.ghe.com", "https://acme.ghe.com"),
        ("http://127.0.0.1:9000/api/v3", "http://127.0.0.1:9000"),
    ],
)
def test_links_go_to_the_web_host_of_the_api(api: str, web: str) -> None:
    assert github_web_url(api) == web


@pytest.mark.parametrize(
    ("start", "held", "total", "geometry"),
    [
        (0.0, 1.0, 1.0, (0, 100)),
        (0.5, 0.0001, 1.0, (50, 1)),
        (0.999, 0.5, 1.0, (99, 1)),
        (0.0, 0.0, 0.0, (0, 100)),
    ],
)
def test_bars_are_at_least_one_percent_and_stay_on_the_axis(
    start: float, held: float, total: float, geometry: tuple[int, int]
) -> None:
    assert bar_geometry(start, held, total) == geometry


# -- store: gates and retention ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_later_gate_evaluation_replaces_the_stored_one(state: str) -> None:
    analysis_id = await insert_run(state, sample_report(), sample_gate())
    newer = {**sample_gate(), "conclusion": "success"}
    async with await psycopg.AsyncConnection.connect(state, autocommit=True) as connection:
        await store.save_gate(connection, analysis_id=analysis_id, gate=newer)
        run = await store.load_run(connection, analysis_id)
        missing = await store.save_gate_for_head(
            connection, repo="acme/shop", number=42, head_sha="f" * 40, gate=newer
        )
    assert run is not None and run.gate is not None
    assert run.gate["conclusion"] == "success"
    assert missing is None
    backup = store.backup_from_gate(run.gate)
    assert isinstance(backup, BackupStatus)
    assert backup.last_backup == NOW - datetime.timedelta(hours=2)
    assert store.contacts_from_gate(run.gate)[1] == Contact("devops-lead", "acme/sre")


@pytest.mark.asyncio
async def test_retention_purges_old_analyses_and_their_gates(state: str) -> None:
    old = [await insert_run(state, {}, sample_gate()) for _ in range(3)]
    recent = await insert_run(state, {})
    with psycopg.connect(state, autocommit=True) as connection:
        connection.execute(
            "UPDATE analyses SET created_at = now() - interval '91 days' WHERE id <= %s",
            (max(old),),
        )
    async with await psycopg.AsyncConnection.connect(state, autocommit=True) as connection:
        assert await store.purge_expired_reports(connection, retention_days=90) == 3
        assert await store.purge_expired_reports(connection, retention_days=90) == 0
        assert await store.load_run(connection, old[0]) is None
        assert await store.load_run(connection, recent) is not None
    assert query(state, "SELECT count(*) FROM analysis_gates") == [(0,)]
