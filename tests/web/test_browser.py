"""A real browser renders the report page of a real sandbox run, served by the real app on
127.0.0.1: headless Chromium (Debian's `chromium`) takes screenshots (desktop and phone,
kept under artifacts/, not in git) and dumps the DOM it built, in which the verdict, the
approvals and the lock timeline must be present. Skipped when /usr/bin/chromium is absent
(.ci/run installs it)."""

from __future__ import annotations

import asyncio
import datetime
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import pytest_asyncio
from aiohttp import web

from bot.check import CheckOptions, run_check
from bot.jobs import JobQueue
from bot.policy.approvals import GateVerdict, RoleStatus
from bot.policy.backup import BackupStatus
from bot.policy.procedure import ProcedureItem, Reason
from bot.report.json_report import to_document
from bot.report.plan import Contact
from bot.sandbox.cluster import EmbeddedCluster
from bot.settings import Settings
from bot.store import db
from bot.store import pages as store
from bot.web.pages import STYLESHEET_PATH
from bot.web.tokens import page_key, run_path
from bot.webhooks.app import build_web_app
from tests.service.conftest import SECRET, Recorder
from tests.web.test_page import Page

# The service tests' PostgreSQL: a cluster, a migrated database per module, emptied per test.

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
FIXTURE = ROOT / "tests" / "fixtures" / "sandbox" / "alter_then_backfill"
MIGRATION = "migrations/versions/0002_amount_bigint.py"
SHA = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
BROWSER_TIMEOUT_S = 90
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs headless Chromium at /usr/bin/chromium (apt-get install chromium)",
)


@dataclass
class Served:
    url: str
    requested: list[str] = field(default_factory=list)


def fixture_report(cluster: EmbeddedCluster) -> dict[str, Any]:
    """The checklist's worst case, really run: a type change that rewrites `accounts` under
    ACCESS EXCLUSIVE, held across a backfill, without timeouts."""
    options = CheckOptions(
        path=FIXTURE,
        from_revision="0001",
        environment="production",
        database_url=cluster.conninfo(),
    )
    return to_document(run_check(options))


def fixture_gate() -> dict[str, Any]:
    why = [Reason("alter-column-type", MIGRATION, 15)]
    verdict = GateVerdict(
        conclusion="action_required",
        environment="production",
        roles=[
            RoleStatus("backend-lead", "acme/backend-leads", 1, ["alice"], 0, why),
            RoleStatus("product-owner", "acme/product", 1, [], 1, why),
        ],
        blocking_reviews=[],
        stale_approvals=[],
        procedure=[
            ProcedureItem(
                "Destructive changes documented",
                False,
                f"1 destructive operation without a comment saying why it is safe: {MIGRATION}:15",
            ),
            ProcedureItem("ADR", None, "not needed: no significant change"),
            ProcedureItem(
                "Maintenance window",
                False,
                "alter-column-type is a major change: schedule it in a maintenance window, "
                "then add the label maintenance-window",
            ),
            ProcedureItem("Backup", True, "last backup 5 h 12 min ago (limit 24 h)"),
        ],
    )
    now = datetime.datetime.now(datetime.UTC)
    backup = BackupStatus(now - datetime.timedelta(hours=5, minutes=12), None, "pgBackRest")
    return store.gate_document(
        verdict,
        base_branch="main",
        contacts=[
            Contact("backend-lead", "acme/backend-leads"),
            Contact("devops-lead", "acme/sre"),
        ],
        backup=backup,
        evaluated_at=now,
    )


@pytest_asyncio.fixture
async def served(state: str, pg_cluster: EmbeddedCluster) -> AsyncIterator[Served]:
    report = await asyncio.to_thread(fixture_report, pg_cluster)
    async with await psycopg.AsyncConnection.connect(state, autocommit=True) as connection:
        analysis = db.Analysis(SHA, "fp", "failure", report)
        analysis_id = await store.record_analysis(
            connection, repo="acme/shop", number=7, analysis=analysis
        )
        await store.save_gate(connection, analysis_id=analysis_id, gate=fixture_gate())
    settings = Settings(app_id=1, private_key="unused", webhook_secret=SECRET)
    pool = await db.open_pool(state, max_size=3)
    queue = JobQueue(state, handlers=Recorder().handlers(), settings=settings)
    await queue.open(pool)
    app = build_web_app(webhook_secret=SECRET, queue=queue)
    requested: list[str] = []

    async def record(request: web.Request, response: web.StreamResponse) -> None:
        requested.append(f"{response.status} {request.path}")

    app.on_response_prepare.append(record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        url = f"http://127.0.0.1:{port}{run_path(page_key(settings), analysis_id)}"
        yield Served(url, requested)
    finally:
        await runner.cleanup()
        await queue.close()
        await pool.close()


async def chromium(*args: str, profile: Path) -> bytes:
    process = await asyncio.create_subprocess_exec(
        str(CHROMIUM),
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), BROWSER_TIMEOUT_S)
    assert process.returncode == 0, stderr.decode(errors="replace")[-2000:]
    return stdout


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return int(width), int(height)


@pytest.mark.asyncio
async def test_chromium_renders_the_report_page(served: Served, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shots = {  # name: (window size, anchor)
        "report-page-desktop.png": ("1280,9000", ""),  # the whole page
        "report-page-phone.png": ("412,2400", ""),  # the first screens on a phone
    }
    for name, (size, anchor) in shots.items():
        shot = ARTIFACTS / name
        shot.unlink(missing_ok=True)
        await chromium(
            f"--screenshot={shot}",
            f"--window-size={size}",
            served.url + anchor,
            profile=tmp_path / f"profile-{name}",
        )
        assert shot.is_file()
        assert png_size(shot) == tuple(int(n) for n in size.split(","))
        assert shot.stat().st_size > 50_000  # a rendered page, not a blank one
    dom = await chromium("--dump-dom", served.url, profile=tmp_path / "profile-dom")
    page = Page(dom.decode("utf-8"))
    assert page.section("verdict").startswith("Not safe to merge yet: this change destroys")
    roles = page.section("approval-roles")
    assert "acme/backend-leads 1 @alice 0" in roles and "acme/product 1 nobody yet 1" in roles
    timeline = page.section("lock-timeline")
    assert "accounts ACCESS EXCLUSIVE" in timeline
    assert "taken by statement 1" in timeline and "until COMMIT" in timeline
    assert any(c.startswith("w-") for c in page.classes())
    assert "alembic downgrade 0001" in page.section("rollback")
    # The stylesheet was fetched from the app (the CSP allows 'self' only) and nothing else
    # was: no script, no third-party resource.
    assert f"200 {STYLESHEET_PATH}" in served.requested
    paths = {entry.split(" ", 1)[1] for entry in served.requested}
    assert paths <= {urlsplit(served.url).path, STYLESHEET_PATH, "/favicon.ico"}
