"""Pull requests from forks (no sandbox until a writer asks), `/migsafe rerun` by a writer
and by a stranger, and the check run's and check suite's "Re-run" buttons."""

from __future__ import annotations

import pytest

from bot.service.check import FORK_SANDBOX_SKIPPED
from bot.service.commands import RERUN_REPLY_MARKER
from tests.e2e.conftest import REPO, Bot, BotFactory, SeededPull, head_migration, seed_shop
from tests.e2e.conftest import summary_of as summary
from tests.fakegithub import payloads

pytestmark = pytest.mark.asyncio

RISKY = "0003_orders_cleanup.py"
FORK_NOTE = "The sandbox did not run: this pull request comes from a fork"


async def comment(bot: Bot, seeded: SeededPull, user: str, body: str) -> int:
    """`user` comments `body` on the PR; the comment's id."""
    written = bot.fake.add_issue_comment(REPO, seeded.pull.number, user, body)
    payload = payloads.issue_comment_on_pr(
        bot.fake, seeded.repo, seeded.pull, written, seeded.installation.id
    )
    status, answer = await bot.deliver("issue_comment", payload)
    assert status == 202, answer
    await bot.settle()
    return written.id


async def test_a_fork_gets_static_analysis_at_once_and_the_sandbox_on_a_writers_rerun(
    bot: Bot,
) -> None:
    seeded = seed_shop(bot.fake, head_migration(RISKY), fork_owner="mallory")
    await bot.pull_request("opened", seeded)
    [first] = bot.check_runs(seeded.head_sha)
    assert first.conclusion == "failure"
    assert FORK_NOTE in summary(first)
    assert any(a.title == "migsafe drop-column" for a in first.annotations)  # static + dry-run
    [(_, _, _, report)] = bot.analyses(seeded.pull.number)
    assert report["sandbox"] == {"ran": False, "skipped_reason": FORK_SANDBOX_SKIPPED}

    bot.fake.set_permission(REPO, "maintainer", "write")
    comment_id = await comment(bot, seeded, "maintainer", "Looks safe to run.\n/migsafe rerun\n")
    assert [r.content for r in bot.fake.reactions(comment_id)] == ["+1"]
    second = bot.check_runs(seeded.head_sha)[-1]
    assert second.id != first.id and second.conclusion == "failure"
    assert FORK_NOTE not in summary(second)
    assert "Sandbox" in summary(second)
    reports = [report for _, _, _, report in bot.analyses(seeded.pull.number)]
    assert reports[-1]["sandbox"]["ran"] is True
    assert bot.query("SELECT approved_by FROM sandbox_approvals") == [("maintainer",)]
    assert bot.fake.comments(REPO, seeded.pull.number)[-1].user.login == "maintainer"
    assert bot.failed_jobs() == []


async def test_a_stranger_asking_for_a_rerun_gets_one_polite_reply_and_nothing_else(
    bot: Bot,
) -> None:
    seeded = seed_shop(bot.fake, head_migration(RISKY), fork_owner="mallory")
    await bot.pull_request("opened", seeded)
    runs_before = len(bot.check_runs(seeded.head_sha))

    asked = [await comment(bot, seeded, "stranger", "/migsafe rerun") for _ in range(2)]

    replies = [c for c in bot.fake.comments(REPO, seeded.pull.number) if c.user.type == "Bot"]
    assert len(replies) == 1
    assert RERUN_REPLY_MARKER in replies[0].body and "@stranger" in replies[0].body
    assert "write access" in replies[0].body
    assert all(bot.fake.reactions(comment_id) == [] for comment_id in asked)
    assert len(bot.check_runs(seeded.head_sha)) == runs_before
    assert bot.query("SELECT count(*) FROM sandbox_approvals") == [(0,)]
    assert bot.failed_jobs() == []


@pytest.mark.parametrize("action", ["rerequested", "requested_action"])
async def test_the_check_runs_rerun_button_checks_again(bot: Bot, action: str) -> None:
    seeded = seed_shop(bot.fake, head_migration(RISKY))
    await bot.pull_request("opened", seeded)
    [run] = bot.check_runs(seeded.head_sha)
    payload = payloads.check_run_event(bot.fake, action, run, seeded.installation.id)
    status, answer = await bot.deliver("check_run", payload)
    assert status == 202, answer
    await bot.settle()
    runs = bot.check_runs(seeded.head_sha)
    assert len(runs) == 2 and runs[-1].conclusion == "failure"
    assert len(bot.analyses(seeded.pull.number)) == 2


async def test_the_check_suites_rerun_button_checks_again(bot: Bot) -> None:
    seeded = seed_shop(bot.fake, head_migration(RISKY))
    await bot.pull_request("opened", seeded)
    payload = payloads.check_suite_event(
        bot.fake,
        "rerequested",
        seeded.repo,
        seeded.head_sha,
        seeded.installation.id,
        head_branch=seeded.pull.head_ref,
        pulls=[seeded.pull],
    )
    status, answer = await bot.deliver("check_suite", payload)
    assert status == 202, answer
    await bot.settle()
    runs = bot.check_runs(seeded.head_sha)
    assert len(runs) == 2 and runs[-1].conclusion == "failure"


async def test_a_fork_check_suite_rerun_finds_its_pull_request_by_head(bot: Bot) -> None:
    seeded = seed_shop(bot.fake, head_migration(RISKY), fork_owner="mallory")
    payload = payloads.check_suite_event(
        bot.fake, "rerequested", seeded.repo, seeded.head_sha, seeded.installation.id
    )
    status, answer = await bot.deliver("check_suite", payload)
    assert status == 202, answer
    await bot.settle()
    [run] = bot.check_runs(seeded.head_sha)
    assert run.conclusion == "failure" and FORK_NOTE in summary(run)


async def test_a_push_is_checked_once_not_by_its_check_suite_too(bot: Bot) -> None:
    seeded = seed_shop(bot.fake, head_migration(RISKY), fork_owner="mallory")
    suite = payloads.check_suite_event(
        bot.fake, "requested", seeded.repo, seeded.head_sha, seeded.installation.id
    )
    status, answer = await bot.deliver("check_suite", suite)
    assert (status, answer["status"]) == (202, "ignored")
    await bot.pull_request("opened", seeded)
    assert len(bot.check_runs(seeded.head_sha)) == 1
    assert len(bot.analyses(seeded.pull.number)) == 1


async def test_a_rerun_approves_only_the_head_the_writer_commented_on(
    make_bot: BotFactory,
) -> None:
    bot = await make_bot(worker=False)
    seeded = seed_shop(bot.fake, head_migration(RISKY), fork_owner="mallory")
    await bot.pull_request("opened", seeded, settle=False)
    bot.fake.set_permission(REPO, "maintainer", "write")
    written = bot.fake.add_issue_comment(REPO, seeded.pull.number, "maintainer", "/migsafe rerun")
    payload = payloads.issue_comment_on_pr(
        bot.fake, seeded.repo, seeded.pull, written, seeded.installation.id
    )
    status, answer = await bot.deliver("issue_comment", payload)
    assert status == 202, answer
    # The fork pushes before the rerun job runs (its synchronize not yet delivered).
    moved = bot.fake.commit("mallory/shop", {"app/evil.py": "X = 1\n"}, branch=seeded.pull.head_ref)
    bot.start_worker()
    await bot.settle()

    assert bot.fake.reactions(written.id) == []
    assert bot.query("SELECT count(*) FROM sandbox_approvals") == [(0,)]
    assert bot.check_runs(moved) == []
    assert [c.user.login for c in bot.fake.comments(REPO, seeded.pull.number)] == ["maintainer"]
    assert bot.failed_jobs() == []


async def test_a_writers_rerun_checks_a_pull_request_opened_before_the_install(bot: Bot) -> None:
    """No event ever told migsafe about this PR: its own branch needs no head guard."""
    seeded = seed_shop(bot.fake, head_migration(RISKY))
    bot.fake.set_permission(REPO, "maintainer", "write")
    comment_id = await comment(bot, seeded, "maintainer", "/migsafe rerun")
    assert [r.content for r in bot.fake.reactions(comment_id)] == ["+1"]
    [run] = bot.check_runs(seeded.head_sha)
    assert run.conclusion == "failure"
    assert bot.failed_jobs() == []
