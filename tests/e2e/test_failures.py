"""A check that cannot finish: it fails (never a passing `neutral`) and never loops.

An invalid policy file on the base branch fails the check once and stores the failure (no
gate, no endless re-check); a transient error fails the run while the job is retried; a
permanent one (GitHub refusing the request) fails it once with the reason; a gate or rerun
job that fails is retried, and the gate's run is created completed in one request.
"""

from __future__ import annotations

import pytest

from bot.jobs import TASK_CHECK_PULL_REQUEST, TASK_EVALUATE_GATE
from tests.e2e.conftest import (
    AUTHOR,
    REPO,
    Bot,
    base_files,
    head_migration,
    seed_shop,
    seed_teams,
)
from tests.e2e.conftest import summary_of as summary
from tests.fakegithub.conftest_plugin import seed_pull_request

pytestmark = pytest.mark.asyncio

RISKY = "0003_orders_cleanup.py"
DROP = "0003_drop_legacy_code.py"
TARBALL = "/repos/{owner}/{repo}/tarball/{ref}"
REVIEWS = "/repos/{owner}/{repo}/pulls/{pull_number}/reviews"
FILES = "/repos/{owner}/{repo}/pulls/{pull_number}/files"
CLIENT_TRIES = 4  # RetryPolicy.max_tries: this many 500s make the job itself fail


def tasks(bot: Bot, name: str) -> list[str]:
    return [status for _, task, status in bot.jobs() if task == name]


async def test_an_invalid_base_policy_fails_the_check_once_and_does_not_loop(bot: Bot) -> None:
    files = {**base_files(), ".github/migsafe.yml": b"environments: [unclosed\n"}
    seeded = seed_pull_request(
        bot.fake, REPO, base_files=files, head_files=head_migration(RISKY), author=AUTHOR
    )
    seed_teams(bot.fake)
    await bot.pull_request("opened", seeded)

    run = bot.check_run(seeded.head_sha)
    assert (run.status, run.conclusion) == ("completed", "failure")
    assert run.output["title"] == "The policy file on the base branch is invalid"
    assert ".github/migsafe.yml" in summary(run)
    [(_, fingerprint, conclusion, report)] = bot.analyses(seeded.pull.number)
    assert (fingerprint, conclusion) == (None, "failure") and "error" in report
    assert tasks(bot, TASK_CHECK_PULL_REQUEST) == ["succeeded"]
    assert bot.check_runs(seeded.head_sha, "migsafe/approvals (main)") == []

    await bot.review(seeded, "lead", "APPROVED")  # a gate event: no new check either
    assert tasks(bot, TASK_CHECK_PULL_REQUEST) == ["succeeded"]
    assert len(bot.check_runs(seeded.head_sha)) == 1
    assert bot.failed_jobs() == []


async def test_a_crashed_attempt_fails_the_run_until_the_retry_succeeds(bot: Bot) -> None:
    seeded = seed_shop(bot.fake, head_migration(RISKY))
    bot.fake.fail_next("GET", TARBALL, 500, times=CLIENT_TRIES)
    await bot.pull_request("opened", seeded)

    crashed, retried = bot.check_runs(seeded.head_sha)
    updates = crashed.updates + retried.updates
    assert all(u.get("conclusion") != "neutral" for u in updates)  # neutral passes
    assert (crashed.conclusion, crashed.output["title"]) == (
        "failure",
        "migsafe could not finish this check",
    )
    assert "retried automatically" in summary(crashed)
    assert (retried.status, retried.conclusion) == ("completed", "failure")
    assert "drop-column" in summary(retried)  # the retry finished the check
    assert tasks(bot, TASK_CHECK_PULL_REQUEST) == ["failed", "succeeded"]


async def test_github_refusing_a_request_fails_the_check_once_without_retry(bot: Bot) -> None:
    seeded = seed_shop(bot.fake, head_migration(RISKY))
    bot.fake.fail_next("GET", FILES, 422, body={"message": "Validation Failed"})
    await bot.pull_request("opened", seeded)

    run = bot.check_run(seeded.head_sha)
    assert (run.status, run.conclusion) == ("completed", "failure")
    assert run.output["title"] == "migsafe could not finish this check"
    assert "will not be retried" in summary(run)
    assert tasks(bot, TASK_CHECK_PULL_REQUEST) == ["succeeded"]
    assert bot.failed_jobs() == []


async def test_a_failed_gate_job_is_retried_and_its_run_is_created_completed(
    bot: Bot, backup_source: str
) -> None:
    seeded = seed_shop(bot.fake, head_migration(DROP))
    await bot.pull_request("opened", seeded)
    bot.fake.fail_next("GET", REVIEWS, 500, times=CLIENT_TRIES)
    await bot.review(seeded, "lead", "APPROVED")

    assert tasks(bot, TASK_EVALUATE_GATE) == ["failed", "succeeded"]
    gate = bot.gate(seeded.head_sha)
    assert gate.output["title"] == "Blocked: needs product-owner approval"
    for run in bot.check_runs(seeded.head_sha, "migsafe/approvals (main)"):
        [created] = run.updates  # one POST, no PATCH
        assert created["status"] == "completed" and created["conclusion"]
