"""pull_request events end to end: a risky migration fails the check with annotations and
review comments and blocks the gate; a PR without migrations passes at once; every action
that changes the head or the base is checked; 300 files are read through pagination."""

from __future__ import annotations

import dataclasses
import time

import pytest

from tests.e2e.conftest import (
    REPO,
    VERSIONS,
    Bot,
    BotFactory,
    dump,
    head_migration,
    line_of,
    seed_shop,
)
from tests.e2e.conftest import summary_of as summary
from tests.fakegithub import payloads
from tests.fakegithub.server import User

pytestmark = pytest.mark.asyncio

RISKY = "0003_orders_cleanup.py"
DROP = "0003_drop_legacy_code.py"
APP_CHANGE = {"app/models.py": "PAGE_SIZE = 100\n"}


async def test_a_risky_migration_fails_the_check_and_blocks_the_gate(bot: Bot) -> None:
    seeded = seed_shop(bot.fake, head_migration(RISKY))
    await bot.pull_request("opened", seeded)

    run = bot.check_run(seeded.head_sha)
    assert run.updates[0]["status"] == "in_progress"
    assert run.status == "completed" and run.conclusion == "failure", dump(run.output)
    assert "drop-column" in summary(run) and "alter-column-type" in summary(run)
    path = VERSIONS + RISKY
    placed = {(a.path, a.start_line, a.title) for a in run.annotations}
    assert (path, line_of(RISKY, "op.drop_column"), "migsafe drop-column") in placed
    assert (path, line_of(RISKY, "type_=sa.Numeric"), "migsafe alter-column-type") in placed
    levels = {a.title: a.annotation_level for a in run.annotations}
    assert levels["migsafe drop-column"] == "failure"

    comments = {(c.path, c.line): c.body for c in bot.fake.review_comments(REPO, 1)}
    drop_comment = comments[(path, line_of(RISKY, "op.drop_column"))]
    assert "drop-column" in drop_comment and "Safe alternative" in drop_comment
    assert (path, line_of(RISKY, "type_=sa.Numeric")) in comments
    assert all(c.user.type == "Bot" for c in bot.fake.review_comments(REPO, 1))

    gate = bot.gate(seeded.head_sha)
    assert gate.conclusion == "action_required"
    assert "backend-lead" in summary(gate) and "product-owner" in summary(gate)
    [(head, fingerprint, conclusion, report)] = bot.analyses(1)
    assert (head, conclusion) == (seeded.head_sha, "failure")
    assert fingerprint and report["sandbox"]["ran"] is True
    assert bot.failed_jobs() == []


async def test_a_rerun_updates_the_review_comments_instead_of_adding_more(bot: Bot) -> None:
    seeded = seed_shop(bot.fake, head_migration(RISKY))
    await bot.pull_request("opened", seeded)
    first = sorted((c.id, c.path, c.line) for c in bot.fake.review_comments(REPO, 1))
    await bot.pull_request("reopened", seeded)
    assert len(bot.check_runs(seeded.head_sha)) == 2
    assert sorted((c.id, c.path, c.line) for c in bot.fake.review_comments(REPO, 1)) == first
    assert bot.fake.deleted_review_comments == []


async def test_a_pull_request_without_migrations_passes_quickly_without_sandbox(
    bot: Bot,
) -> None:
    seeded = seed_shop(bot.fake, APP_CHANGE)
    started = time.monotonic()
    await bot.pull_request("opened", seeded)
    elapsed = time.monotonic() - started

    run = bot.check_run(seeded.head_sha)
    assert run.conclusion == "success"
    assert run.output["title"] == "No migration changes"
    assert elapsed < 5, f"took {elapsed:.1f} s"
    assert bot.fake.requests_to("GET", "repos/download-tarball-archive") == []
    [(_, fingerprint, conclusion, report)] = bot.analyses(1)
    assert (fingerprint, conclusion, report) == (None, "success", {})
    assert bot.gate(seeded.head_sha).conclusion == "success"
    assert bot.fake.review_comments(REPO, 1) == []


@pytest.mark.parametrize("action", ["synchronize", "reopened", "ready_for_review"])
async def test_each_head_changing_action_checks_the_current_head(bot: Bot, action: str) -> None:
    seeded = seed_shop(bot.fake, APP_CHANGE)
    if action == "synchronize":
        bot.fake.commit(REPO, {"app/models.py": "PAGE_SIZE = 25\n"}, branch="feature")
    if action == "ready_for_review":
        seeded.pull.draft = False
    head = seeded.pull.head_sha
    await bot.pull_request(action, seeded)
    assert bot.check_run(head).conclusion == "success"
    assert [a[0] for a in bot.analyses(1)] == [head]


async def test_an_edit_of_the_title_does_nothing(bot: Bot) -> None:
    seeded = seed_shop(bot.fake, APP_CHANGE)
    changes = {"title": {"from": "Old title"}}
    payload = payloads.pull_request_event(
        bot.fake, "edited", seeded.repo, seeded.pull, seeded.installation.id, changes=changes
    )
    status, answer = await bot.deliver("pull_request", payload)
    assert (status, answer["status"]) == (202, "ignored")
    assert bot.jobs() == []


async def test_retargeting_evaluates_the_gate_for_the_new_base(bot: Bot) -> None:
    seeded = seed_shop(bot.fake, head_migration(DROP))
    old_base = seeded.pull.base_sha
    staging = bot.fake.commit(REPO, {}, branch="staging", parent=old_base, message="Staging")
    seeded.pull.base_ref, seeded.pull.base_sha = "staging", staging
    changes = {"base": {"ref": {"from": "main"}, "sha": {"from": old_base}}}
    await bot.pull_request("edited", seeded, changes=changes)

    gate = bot.gate(seeded.head_sha, base="staging")
    assert gate.conclusion == "action_required"
    assert "**staging**" in summary(gate)
    assert "backend-lead" in summary(gate) and "product-owner" not in summary(gate)
    names = {run.name for run in bot.fake.check_runs(REPO, head_sha=seeded.head_sha)}
    assert names == {"migsafe (staging)", "migsafe/approvals (staging)"}


async def test_a_pull_request_of_300_files_is_read_page_by_page(bot: Bot) -> None:
    files: dict[str, bytes | str | None] = {
        f"app/module_{i:03}.py": f"VALUE = {i}\n" for i in range(299)
    }
    files.update(head_migration(RISKY))  # sorts last: on the third page
    seeded = seed_shop(bot.fake, files)
    await bot.pull_request("opened", seeded)

    listed = bot.fake.requests_to("GET", "pulls/list-files")
    assert {r.query.get("page", "1") for r in listed} == {"1", "2", "3"}
    assert {r.query.get("per_page") for r in listed} == {"100"}
    run = bot.check_run(seeded.head_sha)
    assert run.conclusion == "failure"
    assert any(a.title == "migsafe drop-column" for a in run.annotations)
    assert bot.failed_jobs() == []


async def test_github_502_and_a_secondary_rate_limit_are_ridden_out(bot: Bot) -> None:
    seeded = seed_shop(bot.fake, head_migration(RISKY))
    bot.fake.fail_next("POST", "/repos/{owner}/{repo}/check-runs", 502)
    bot.fake.fail_next("PATCH", "/repos/{owner}/{repo}/check-runs/{check_run_id}", 502)
    bot.fake.secondary_rate_limit_next("GET", "/repos/{owner}/{repo}/pulls/{pull_number}/files")
    await bot.pull_request("opened", seeded)

    injected = sorted(status for _, status, _ in bot.fake.errors)
    assert injected == [403, 502, 502]
    run = bot.check_run(seeded.head_sha)
    assert (run.status, run.conclusion) == ("completed", "failure")
    assert bot.gate(seeded.head_sha).conclusion == "action_required"
    assert bot.failed_jobs() == []


async def test_the_check_runs_link_to_their_report_page(make_bot: BotFactory) -> None:
    bot = await make_bot(public_url="https://migsafe.example.test")
    seeded = seed_shop(bot.fake, head_migration(RISKY))
    await bot.pull_request("opened", seeded)

    run, gate = bot.check_run(seeded.head_sha), bot.gate(seeded.head_sha)
    page = run.details_url
    assert page.startswith("https://migsafe.example.test/runs/") and "token=" in page
    assert gate.details_url == page  # the gate's summary lives on the same page
    path = page.removeprefix("https://migsafe.example.test")
    answer = await bot.client.get(path)
    assert answer.status == 200
    html = await answer.text()
    assert "drop-column" in html and "alembic downgrade" in html
    wrong = await bot.client.get(path[: -len("x")] + ("0" if path[-1] != "0" else "1"))
    assert wrong.status == 404


async def test_a_migration_beyond_githubs_3000_file_cap_is_still_checked(bot: Bot) -> None:
    files: dict[str, bytes | str | None] = {
        f"app/module_{i:04}.py": f"VALUE = {i}\n" for i in range(3000)
    }
    files.update(head_migration(RISKY))  # "migrations/" sorts after "app/": not listed
    seeded = seed_shop(bot.fake, files)
    await bot.pull_request("opened", seeded)

    listed = bot.fake.requests_to("GET", "pulls/list-files")
    pages = {r.query.get("page", "1") for r in listed}
    assert pages == {str(n) for n in range(1, 31)}  # GitHub's cap: the migration is not listed
    run = bot.check_run(seeded.head_sha)
    assert run.conclusion == "failure"
    assert any(a.title == "migsafe drop-column" for a in run.annotations)
    assert bot.failed_jobs() == []


async def test_a_closed_pull_request_is_forgotten(bot: Bot) -> None:
    seeded = seed_shop(bot.fake, head_migration(DROP))
    await bot.pull_request("opened", seeded)
    assert bot.query("SELECT number FROM pull_requests") == [(1,)]
    seeded.pull.state = "closed"
    await bot.pull_request("closed", seeded)
    assert bot.query("SELECT number FROM pull_requests") == []
    assert bot.failed_jobs() == []


async def test_only_migsafes_own_review_comments_are_ever_deleted(bot: Bot) -> None:
    seeded = seed_shop(bot.fake, head_migration(RISKY))
    await bot.pull_request("opened", seeded)
    ours = bot.fake.review_comments(REPO, 1)[0]
    other_bot = User("other-app[bot]", 990001, "Bot")
    foreign = dataclasses.replace(
        ours,
        id=990002,
        user=other_bot,
        body="<!-- migsafe:finding:deadbeef -->\nQuoting migsafe here.",
    )
    bot.fake.review_comment_store[foreign.id] = foreign
    await bot.pull_request("reopened", seeded)

    assert foreign.id in {c.id for c in bot.fake.review_comments(REPO, 1)}
    assert bot.fake.deleted_review_comments == []
    assert bot.fake.requests_to("GET", "apps/get-authenticated")  # the app's login, asked
