"""The thin calls against the fake GitHub: check runs, pulls, tarball, teams, comments."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bot.github.checks import (
    Annotation,
    CheckAction,
    complete_check_run,
    create_check_run,
)
from bot.github.comments import ReviewComment, sync_review_comments
from bot.github.pulls import (
    add_reaction,
    collaborator_permission,
    create_issue_comment,
    file_at_ref,
    list_reviews,
    pull_request_files,
    touches_migrations,
)
from bot.github.tarball import UnsafeArchive, download_tree
from bot.github.teams import TeamMemberships
from tests.github import BASE_POLICY, MIGRATION, MIGRATION_SOURCE, ORG, POLICY, REPO, world


@pytest.mark.asyncio
async def test_check_run_in_progress_then_completed_with_120_annotations() -> None:
    annotations = [
        Annotation(MIGRATION, line, line, "warning", f"finding {line}") for line in range(1, 121)
    ]
    async with world() as w:
        api = w.api()
        run_id = await create_check_run(
            api, REPO, name="migsafe", head_sha=w.head_sha, details_url="https://example.com/r"
        )
        [run] = w.fake.check_runs(REPO, head_sha=w.head_sha, name="migsafe")
        assert (run.id, run.status) == (run_id, "in_progress")
        await complete_check_run(
            api,
            REPO,
            run_id,
            conclusion="failure",
            title="1 error",
            summary="## migsafe\n" + "x" * 70_000,
            text="details",
            annotations=annotations,
            actions=[CheckAction("Run sandbox", "Run the sandbox on this commit", "sandbox")],
        )
    assert (run.status, run.conclusion) == ("completed", "failure")
    assert [a.message for a in run.annotations] == [f"finding {n}" for n in range(1, 121)]
    assert [len(u.get("output", {}).get("annotations", [])) for u in run.updates[1:]] == [
        50,
        50,
        20,
    ]
    assert len(run.output["summary"]) <= 65_535 and "cut" in run.output["summary"][-200:]
    assert run.output["text"] == "details"


@pytest.mark.asyncio
async def test_check_run_without_annotations_is_one_update() -> None:
    async with world() as w:
        run_id = await create_check_run(w.api(), REPO, name="migsafe", head_sha=w.head_sha)
        await complete_check_run(
            w.api(), REPO, run_id, conclusion="success", title="No migration", summary="ok"
        )
        [run] = w.fake.check_runs(REPO)
    assert len(run.updates) == 2 and run.conclusion == "success"


@pytest.mark.asyncio
async def test_policy_file_is_read_from_the_base_branch() -> None:
    async with world() as w:
        api = w.api()
        assert await file_at_ref(api, REPO, POLICY, "main") == BASE_POLICY.encode()
        assert await file_at_ref(api, REPO, POLICY, w.head_sha) == b"environment: local\n"
        assert await file_at_ref(api, REPO, ".github/nothing.yml", "main") is None
        assert await file_at_ref(api, REPO, "migrations", "main") is None  # a directory


@pytest.mark.asyncio
async def test_files_of_the_pull_request_and_which_are_migrations() -> None:
    async with world() as w:
        files = await pull_request_files(w.api(), REPO, w.number)
    assert sorted(f.filename for f in files) == [POLICY, MIGRATION]
    assert touches_migrations(files, ["migrations/versions/*.py"]) == [MIGRATION]


@pytest.mark.asyncio
async def test_collaborator_permissions() -> None:
    async with world() as w:
        w.fake.set_permission(REPO, "writer", "write")
        w.fake.set_permission(REPO, "maintainer", "maintain")
        w.fake.set_permission(REPO, "triager", "triage")
        api = w.api()
        got = {
            login: await collaborator_permission(api, REPO, login)
            for login in ("writer", "maintainer", "triager", "nobody-at-all")
        }
    assert got == {
        "writer": "write",
        "maintainer": "maintain",
        "triager": "triage",
        "nobody-at-all": "none",
    }


@pytest.mark.asyncio
async def test_reply_reaction_and_reviews() -> None:
    async with world() as w:
        command = w.fake.add_issue_comment(REPO, w.number, "stranger", "/migsafe rerun")
        api = w.api()
        await add_reaction(api, REPO, command.id, "eyes")
        reply_id = await create_issue_comment(api, REPO, w.number, "Only writers can re-run.")
        w.fake.add_review(REPO, w.number, "lead", "APPROVED")
        reviews = await list_reviews(api, REPO, w.number)
        assert [r.content for r in w.fake.reactions(command.id)] == ["eyes"]
        assert [c.body for c in w.fake.comments(REPO, w.number) if c.id == reply_id] == [
            "Only writers can re-run."
        ]
    assert [(r["user"]["login"], r["state"], r["commit_id"]) for r in reviews] == [
        ("lead", "APPROVED", w.head_sha)
    ]


@pytest.mark.asyncio
async def test_tarball_download_and_extraction(tmp_path: Path) -> None:
    async with world() as w:
        base = await download_tree(w.api(), REPO, w.base_sha, tmp_path / "base")
        head = await download_tree(w.api(), REPO, w.head_sha, tmp_path / "head")
    assert (head / MIGRATION).read_text() == MIGRATION_SOURCE
    assert (base / POLICY).read_text() == BASE_POLICY
    assert not (base / MIGRATION).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base", "head"]  # temp file gone


@pytest.mark.asyncio
async def test_tarball_over_the_byte_limit_is_refused(tmp_path: Path) -> None:
    big: dict[str, bytes | str] = {
        "data/blob.bin": bytes(range(256)) * 4096
    }  # 1 MiB, a small download
    async with world(extra_head_files=big) as w:
        with pytest.raises(UnsafeArchive, match="bytes uncompressed"):
            await download_tree(w.api(), REPO, w.head_sha, tmp_path / "t", max_bytes=500_000)


@pytest.mark.asyncio
async def test_team_membership_is_cached_and_forgotten() -> None:
    async with world() as w:
        w.fake.add_team(ORG, "backend-leads", {"alice": "member"})
        w.fake.set_membership(ORG, "backend-leads", "bob", state="pending")
        memberships = TeamMemberships(ttl_s=300)
        api = w.api()

        async def member(login: str) -> bool:
            return await memberships.is_active_member(api, ORG, "backend-leads", login)

        assert [await member(u) for u in ("alice", "bob", "carol")] == [True, False, False]
        assert [await member(u) for u in ("alice", "bob", "carol")] == [True, False, False]
        lookups = w.fake.requests_to("GET", "teams/get-membership-for-user-in-org")
        assert len(lookups) == 3  # the second round came from the cache

        w.fake.set_membership(ORG, "backend-leads", "bob", state="active")
        assert await member("bob") is False  # still cached
        memberships.forget(ORG, "backend-leads", "bob")
        assert await member("bob") is True
        w.fake.orgs[ORG].teams["backend-leads"].members.pop("alice")
        memberships.forget(ORG, "backend-leads")  # the whole team
        assert await member("alice") is False


@pytest.mark.asyncio
async def test_membership_cache_expires() -> None:
    clock = [time.monotonic()]
    async with world() as w:
        w.fake.add_team(ORG, "leads", {"alice": "member"})
        memberships = TeamMemberships(ttl_s=300, timer=lambda: clock[0])
        api = w.api()
        await memberships.is_active_member(api, ORG, "leads", "alice")
        clock[0] += 301
        await memberships.is_active_member(api, ORG, "leads", "alice")
        assert len(w.fake.requests_to("GET", "teams/get-membership-for-user-in-org")) == 2


def wanted(fingerprint: str, line: int, text: str) -> ReviewComment:
    return ReviewComment(fingerprint, MIGRATION, line, text)


@pytest.mark.asyncio
async def test_comment_sync_creates_updates_and_deletes() -> None:
    async with world() as w:
        api = w.api()
        first = [
            wanted("aaaa", 9, "Dropping legacy_ref destroys data."),
            wanted("bbbb", 10, "Create the index concurrently."),
        ]
        outcome = await sync_review_comments(
            api, REPO, w.number, w.head_sha, first, bot_login="migsafe[bot]"
        )
        assert (outcome.created, outcome.updated, outcome.deleted) == (2, 0, 0)
        ids = {c.body: c.id for c in w.fake.review_comments(REPO, w.number)}

        second = [
            wanted("aaaa", 9, "Dropping legacy_ref destroys its data; stop reading it first."),
            ReviewComment(
                "cccc",
                MIGRATION,
                10,
                "Use CONCURRENTLY.",
                suggestion="    op.create_index('ix_orders_status', 'orders', ['status'],"
                " postgresql_concurrently=True)",
            ),
        ]
        outcome = await sync_review_comments(
            api, REPO, w.number, w.head_sha, second, bot_login="migsafe[bot]"
        )
        assert (outcome.created, outcome.updated, outcome.deleted) == (1, 1, 1)
        comments = {c.id: c for c in w.fake.review_comments(REPO, w.number)}
        assert set(comments) == {ids[first[0].body], max(comments)}
        assert comments[ids[first[0].body]].body == second[0].body
        assert "```suggestion" in comments[max(comments)].body
        assert [c.id for c in w.fake.deleted_review_comments] == [ids[first[1].body]]

        again = await sync_review_comments(
            api, REPO, w.number, w.head_sha, second, bot_login="migsafe[bot]"
        )
        assert (again.created, again.updated, again.deleted) == (0, 0, 0)


@pytest.mark.asyncio
async def test_comment_on_a_line_outside_the_diff_is_skipped() -> None:
    async with world() as w:
        outcome = await sync_review_comments(
            w.api(), REPO, w.number, w.head_sha, [wanted("dddd", 400, "far away")]
        )
        assert outcome.created == 0
        assert outcome.skipped == [f"{MIGRATION}:400: not part of the diff"]


@pytest.mark.asyncio
async def test_tarball_download_is_retried_after_a_502(tmp_path: Path) -> None:
    async with world() as w:
        w.fake.fail_next("GET", "/repos/{owner}/{repo}/tarball/{ref}", 502)
        head = await download_tree(w.api(), REPO, w.head_sha, tmp_path / "head")
        statuses = [r.status for r in w.fake.requests_to("GET", "repos/download-tarball-archive")]
    assert (head / MIGRATION).read_text() == MIGRATION_SOURCE
    assert statuses == [502, 302]
