"""The operator's log of real checks against the fake GitHub (issue 15, item 4): each
completed check run names its report page; a crashed attempt is one warning line, its
traceback only at DEBUG."""

from __future__ import annotations

import logging
import re

import pytest

from bot.service_logging import QuietTracebacks
from tests.e2e.conftest import REPO, BotFactory, head_migration, seed_shop

pytestmark = pytest.mark.asyncio

PUBLIC_URL = "https://migsafe.example.test"
RISKY = "0003_orders_cleanup.py"
TARBALL = "/repos/{owner}/{repo}/tarball/{ref}"
FILES = "/repos/{owner}/{repo}/pulls/{pull_number}/files"
CLIENT_TRIES = 4  # RetryPolicy.max_tries: this many 500s make the job itself fail
TRACEBACK = "Traceback (most recent call last)"


async def test_a_completed_check_logs_its_report_page(
    make_bot: BotFactory, quiet: pytest.LogCaptureFixture
) -> None:
    bot = await make_bot(public_url=PUBLIC_URL)
    seeded = seed_shop(bot.fake, head_migration(RISKY))
    await bot.pull_request("opened", seeded)

    run, gate = bot.check_run(seeded.head_sha), bot.gate(seeded.head_sha)
    assert run.details_url.startswith(f"{PUBLIC_URL}/runs/") and "token=" in run.details_url
    completed = [
        r.getMessage()
        for r in quiet.records
        if r.name == "migsafe.service" and " completed: " in r.getMessage()
    ]
    number = seeded.pull.number
    [check_line] = [line for line in completed if f" migsafe (main) of {seeded.head_sha} " in line]
    assert check_line.startswith(f"{REPO}#{number}: ")
    assert f"completed: {run.conclusion} " in check_line
    assert check_line.endswith(f"report {run.details_url}")
    [gate_line] = [line for line in completed if "migsafe/approvals (main)" in line]
    assert gate_line.endswith(f"report {gate.details_url}")


async def test_without_a_public_url_the_line_says_there_is_no_page(
    make_bot: BotFactory, quiet: pytest.LogCaptureFixture
) -> None:
    bot = await make_bot()
    seeded = seed_shop(bot.fake, head_migration(RISKY))
    await bot.pull_request("opened", seeded)
    [line] = [
        r.getMessage()
        for r in quiet.records
        if r.name == "migsafe.service" and " migsafe (main) of " in r.getMessage()
    ]
    assert line.endswith("report none (MIGSAFE_PUBLIC_URL is not set)")


async def test_a_crashed_attempt_is_one_warning_line_and_its_traceback_is_at_debug(
    make_bot: BotFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    quiet_filter = QuietTracebacks(debug=False)  # the records are kept; the handler is INFO's
    caplog.handler.addFilter(quiet_filter)
    try:
        bot = await make_bot(public_url=PUBLIC_URL)
        seeded = seed_shop(bot.fake, head_migration(RISKY))
        bot.fake.fail_next("GET", TARBALL, 500, times=CLIENT_TRIES)
        await bot.pull_request("opened", seeded)
    finally:
        caplog.handler.removeFilter(quiet_filter)

    shown = [r for r in caplog.records if r.levelno >= logging.INFO]
    formatter = logging.Formatter("%(levelname)s %(name)s: %(message)s")
    text = "\n".join(formatter.format(r) for r in shown)
    assert TRACEBACK not in text
    failures = [r.getMessage() for r in shown if " failed: " in r.getMessage()]
    [failure] = failures
    assert f"{REPO}#{seeded.pull.number} head {seeded.head_sha}" in failure
    assert "retried in 3 s as job" in failure
    debug = [r for r in caplog.records if r.name == "migsafe.jobs" and r.levelno == logging.DEBUG]
    assert any(r.exc_info is not None for r in debug)
    assert TRACEBACK in "\n".join(formatter.format(r) for r in debug)


async def test_a_check_github_refuses_is_one_warning_line_with_its_cause_and_page(
    make_bot: BotFactory, quiet: pytest.LogCaptureFixture
) -> None:
    bot = await make_bot(public_url=PUBLIC_URL)
    seeded = seed_shop(bot.fake, head_migration(RISKY))
    bot.fake.fail_next("GET", FILES, 422, body={"message": "Validation Failed"})
    await bot.pull_request("opened", seeded)

    run = bot.check_run(seeded.head_sha)
    assert run.conclusion == "failure"
    [warning] = [r for r in quiet.records if r.levelno >= logging.WARNING]
    line = warning.getMessage()
    assert line.startswith(f"{REPO}#{seeded.pull.number}: migsafe (main) of {seeded.head_sha} ")
    assert "completed: failure (migsafe could not finish this check); " in line
    assert "; InvalidField: Validation Failed, not retried; " in line
    page = line.rpartition("; report ")[2]
    assert re.fullmatch(re.escape(PUBLIC_URL) + r"/runs/\d+\?token=[\w-]{43}", page), page
    assert warning.exc_info is None
    answer = await bot.client.get(page.removeprefix(PUBLIC_URL))
    assert answer.status == 200  # the page the line names exists and the token opens it
