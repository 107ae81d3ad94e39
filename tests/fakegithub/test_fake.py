"""The fake GitHub bites: requests that break GitHub's description are violations, valid flows
pass, responses match the description, and built webhook payloads match GitHub's schemas."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from gidgethub import BadRequest, GitHubBroken
from gidgethub.aiohttp import GitHubAPI
from gidgethub.apps import get_installation_access_token, get_jwt

from tests.fakegithub import payloads, require_shared_github_dir
from tests.fakegithub.conftest_plugin import SeededPull, seed_org, seed_pull_request
from tests.fakegithub.openapi import GitHubDescription
from tests.fakegithub.published import OPERATIONS, SUPPLEMENT_OPERATIONS
from tests.fakegithub.server import CheckRun, FakeGitHub

REPO = "acme/shop"
MIGRATION = "migrations/versions/0002_add_index.py"
MIGRATION_TEXT = (
    "def upgrade():\n    op.create_index('ix', 'users', ['email'])\n\n\n"
    "def downgrade():\n    op.drop_index('ix')\n"
)
ROOT = Path(__file__).resolve().parents[2]


def gh(session: aiohttp.ClientSession, fake: FakeGitHub) -> GitHubAPI:
    return GitHubAPI(session, "migsafe-tests", base_url=fake.url)


def seeded(fake: FakeGitHub, files: int = 1) -> SeededPull:
    head: dict[str, bytes | str | None] = {MIGRATION: MIGRATION_TEXT}
    head.update({f"app/module_{i:03}.py": f"x = {i}\n" for i in range(files - 1)})
    return seed_pull_request(
        fake,
        REPO,
        base_files={"README.md": "shop\n", "migrations/versions/0001_init.py": "# init\n"},
        head_files=head,
    )


async def installation_token(api: GitHubAPI, fake: FakeGitHub, installation_id: int) -> str:
    answer = await get_installation_access_token(
        api,
        installation_id=str(installation_id),
        app_id=str(fake.app_id),
        private_key=fake.private_key_pem,
    )
    return str(answer["token"])


async def raw(
    session: aiohttp.ClientSession,
    fake: FakeGitHub,
    method: str,
    path: str,
    token: str | None,
    **kwargs: Any,
) -> tuple[int, dict[str, str], bytes]:
    headers = {"User-Agent": "migsafe-tests", "Accept": "application/vnd.github+json"}
    if token:
        headers["Authorization"] = f"token {token}"
    async with session.request(method, fake.url + path, headers=headers, **kwargs) as response:
        headers = {k.lower(): v for k, v in response.headers.items()}
        return response.status, headers, await response.read()


# ----- violations ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_wrong_body_is_a_violation_answered_422(
    fake: FakeGitHub, session: aiohttp.ClientSession
) -> None:
    pr = seeded(fake)
    token = await installation_token(gh(session, fake), fake, pr.installation.id)
    run = await gh(session, fake).post(
        f"/repos/{REPO}/check-runs",
        data={"name": "migsafe", "head_sha": pr.head_sha},
        oauth_token=token,
    )
    with pytest.raises(BadRequest) as raised:
        await gh(session, fake).patch(
            f"/repos/{REPO}/check-runs/{run['id']}",
            data={"conclusion": "bogus"},
            oauth_token=token,
        )
    assert raised.value.status_code == 422
    [violation] = fake.pop_violations()
    assert "PATCH" in violation and "'bogus' is not one of" in violation


@pytest.mark.asyncio
async def test_too_many_annotations_in_one_request_is_a_violation(
    fake: FakeGitHub, session: aiohttp.ClientSession
) -> None:
    pr = seeded(fake)
    token = await installation_token(gh(session, fake), fake, pr.installation.id)
    annotation = {
        "path": MIGRATION,
        "start_line": 2,
        "end_line": 2,
        "annotation_level": "warning",
        "message": "m",
    }
    status, _, _ = await raw(
        session,
        fake,
        "POST",
        f"/repos/{REPO}/check-runs",
        token,
        json={
            "name": "migsafe",
            "head_sha": pr.head_sha,
            "output": {"title": "t", "summary": "s", "annotations": [annotation] * 51},
        },
    )
    assert status == 422
    assert "output/annotations" in fake.pop_violations()[0]


@pytest.mark.asyncio
async def test_unknown_path_and_wrong_method_are_violations_answered_404(
    fake: FakeGitHub, session: aiohttp.ClientSession
) -> None:
    pr = seeded(fake)
    token = await installation_token(gh(session, fake), fake, pr.installation.id)
    assert (await raw(session, fake, "GET", f"/repos/{REPO}/statuses/abc", token))[0] == 404
    assert (await raw(session, fake, "DELETE", f"/repos/{REPO}/pulls/1", token))[0] == 404
    violations = fake.pop_violations()
    assert "no operation of the description matches" in violations[0]
    assert "has only ['GET']" in violations[1]


@pytest.mark.asyncio
async def test_credentials_are_checked(fake: FakeGitHub, session: aiohttp.ClientSession) -> None:
    pr = seeded(fake)
    token = await installation_token(gh(session, fake), fake, pr.installation.id)
    path = f"/repos/{REPO}/pulls/{pr.pull.number}"
    assert (await raw(session, fake, "GET", path, None))[0] == 401
    assert (await raw(session, fake, "GET", path, "ghs_not_issued_by_the_fake"))[0] == 401
    assert (await raw(session, fake, "GET", path, token))[0] == 200
    fake.advance_time(3600)
    assert (await raw(session, fake, "GET", path, token))[0] == 401
    # An installation token cannot call the app endpoints, which want the app's JWT.
    assert (await raw(session, fake, "GET", "/app", token))[0] == 401
    violations = fake.pop_violations()
    assert len(violations) == 4
    assert "Requires authentication" in violations[0]
    assert "not a token this fake issued" in violations[1]
    assert "expired" in violations[2]
    assert "JSON web token" in violations[3]


@pytest.mark.asyncio
async def test_a_jwt_signed_with_another_key_is_refused(
    fake: FakeGitHub, session: aiohttp.ClientSession
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    api = gh(session, fake)
    with pytest.raises(BadRequest) as raised:
        await api.getitem("/app", jwt=get_jwt(app_id=str(fake.app_id), private_key=other))
    assert raised.value.status_code == 401
    assert "could not be decoded" in fake.pop_violations()[0]


# ----- a valid flow -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_valid_flow_passes_and_state_is_kept(
    fake: FakeGitHub, session: aiohttp.ClientSession
) -> None:
    pr = seeded(fake, files=300)
    api = gh(session, fake)
    token = await installation_token(api, fake, pr.installation.id)
    assert fake.tokens_issued(pr.installation.id) == 1

    run = await api.post(
        f"/repos/{REPO}/check-runs",
        data={"name": "migsafe", "head_sha": pr.head_sha, "status": "in_progress"},
        oauth_token=token,
    )
    annotations = [
        {
            "path": MIGRATION,
            "start_line": 2,
            "end_line": 2,
            "annotation_level": "warning",
            "message": f"finding {i}",
        }
        for i in range(50)
    ]
    await api.patch(
        f"/repos/{REPO}/check-runs/{run['id']}",
        data={"output": {"title": "migsafe", "summary": "50 findings", "annotations": annotations}},
        oauth_token=token,
    )
    done = await api.patch(
        f"/repos/{REPO}/check-runs/{run['id']}",
        data={"conclusion": "failure", "output": {"title": "migsafe", "summary": "done"}},
        oauth_token=token,
    )
    assert done["status"] == "completed" and done["output"]["annotations_count"] == 50

    files = [
        f["filename"]
        async for f in api.getiter(
            f"/repos/{REPO}/pulls/{pr.pull.number}/files?per_page=100", oauth_token=token
        )
    ]
    assert len(files) == 300 and MIGRATION in files
    file_pages = fake.requests_to("GET", "pulls/list-files")
    assert [r.query.get("page", "1") for r in file_pages] == ["1", "2", "3"]

    status, _, body = await raw(session, fake, "GET", f"/repos/{REPO}/tarball/{pr.head_sha}", token)
    assert status == 200
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        assert archive.pax_headers["comment"] == pr.head_sha
        top = f"acme-shop-{pr.head_sha[:7]}"
        member = archive.extractfile(f"{top}/{MIGRATION}")
        assert member is not None and member.read().decode() == MIGRATION_TEXT
    assert gzip.decompress(body)  # a real gzip stream

    [stored] = fake.check_runs(REPO, head_sha=pr.head_sha)
    assert [a.message for a in stored.annotations] == [f"finding {i}" for i in range(50)]
    assert [u.get("status") or u.get("conclusion") for u in stored.updates] == [
        "in_progress",
        None,
        "failure",
    ]
    assert stored.conclusion == "failure" and stored.output["summary"] == "done"


@pytest.mark.asyncio
async def test_every_operation_answers_and_its_response_matches_the_description(
    fake: FakeGitHub, session: aiohttp.ClientSession
) -> None:
    pr = seeded(fake)
    seed_org(fake, "acme", {"dba": {"alice": "maintainer", "bob": "member"}})
    fake.set_permission(REPO, "alice", "maintain")
    human = fake.add_issue_comment(REPO, 1, "alice", "/migsafe rerun")
    api = gh(session, fake)
    jwt = get_jwt(app_id=str(fake.app_id), private_key=fake.private_key_pem)
    token = await installation_token(api, fake, pr.installation.id)
    n, r = pr.pull.number, f"/repos/{REPO}"

    assert (await api.getitem("/app", jwt=jwt))["id"] == fake.app_id
    assert (await api.getitem(f"{r}/installation", jwt=jwt))["id"] == pr.installation.id
    members = await api.getitem("/orgs/acme/teams/dba/members", oauth_token=token)
    assert {m["login"] for m in members} == {"alice", "bob"}
    membership = await api.getitem("/orgs/acme/teams/dba/memberships/alice", oauth_token=token)
    assert membership["state"] == "active" and membership["role"] == "maintainer"
    run = await api.post(
        f"{r}/check-runs", data={"name": "migsafe", "head_sha": pr.head_sha}, oauth_token=token
    )
    assert (await api.getitem(f"{r}/check-runs/{run['id']}", oauth_token=token))["name"]
    await api.patch(
        f"{r}/check-runs/{run['id']}", data={"status": "in_progress"}, oauth_token=token
    )
    listed = await api.getitem(f"{r}/commits/{pr.head_sha}/check-runs", oauth_token=token)
    assert listed["total_count"] == 1
    permission = await api.getitem(f"{r}/collaborators/alice/permission", oauth_token=token)
    assert (permission["permission"], permission["role_name"]) == ("write", "maintain")
    assert [
        p["number"]
        for p in await api.getitem(f"{r}/commits/{pr.head_sha}/pulls", oauth_token=token)
    ] == [n]
    compare = await api.getitem(f"{r}/compare/{pr.base_sha}...{pr.head_sha}", oauth_token=token)
    assert compare["ahead_by"] == 1 and compare["files"][0]["filename"] == MIGRATION
    policy = await api.getitem(
        f"{r}/contents/migrations/versions/0001_init.py?ref=main", oauth_token=token
    )
    assert policy["type"] == "file" and policy["encoding"] == "base64"
    comment = await api.post(f"{r}/issues/{n}/comments", data={"body": "report"}, oauth_token=token)
    await api.patch(
        f"{r}/issues/comments/{comment['id']}", data={"body": "report v2"}, oauth_token=token
    )
    await api.post(
        f"{r}/issues/comments/{human.id}/reactions", data={"content": "+1"}, oauth_token=token
    )
    assert len(await api.getitem(f"{r}/issues/{n}/comments", oauth_token=token)) == 2
    await api.post(f"{r}/issues/{n}/labels", data={"labels": ["migration"]}, oauth_token=token)
    assert [x["name"] for x in await api.getitem(f"{r}/issues/{n}/labels", oauth_token=token)] == [
        "migration"
    ]
    assert len(await api.getitem(f"{r}/pulls", oauth_token=token)) == 1
    assert (await api.getitem(f"{r}/pulls/{n}", oauth_token=token))["head"]["sha"] == pr.head_sha
    assert len(await api.getitem(f"{r}/pulls/{n}/commits", oauth_token=token)) == 1
    assert len(await api.getitem(f"{r}/pulls/{n}/files", oauth_token=token)) == 1
    inline = await api.post(
        f"{r}/pulls/{n}/comments",
        data={
            "body": "use CONCURRENTLY",
            "commit_id": pr.head_sha,
            "path": MIGRATION,
            "line": 2,
            "side": "RIGHT",
        },
        oauth_token=token,
    )
    await api.patch(f"{r}/pulls/comments/{inline['id']}", data={"body": "v2"}, oauth_token=token)
    assert len(await api.getitem(f"{r}/pulls/{n}/comments", oauth_token=token)) == 1
    await api.delete(f"{r}/pulls/comments/{inline['id']}", oauth_token=token)
    review = await api.post(
        f"{r}/pulls/{n}/reviews",
        data={
            "event": "REQUEST_CHANGES",
            "body": "unsafe",
            "comments": [{"path": MIGRATION, "line": 2, "body": "lock"}],
        },
        oauth_token=token,
    )
    # As on GitHub, the single inline comment above made a review of its own.
    assert len(await api.getitem(f"{r}/pulls/{n}/reviews", oauth_token=token)) == 2
    await api.put(
        f"{r}/pulls/{n}/reviews/{review['id']}/dismissals",
        data={"message": "fixed", "event": "DISMISS"},
        oauth_token=token,
    )
    status, _, _ = await raw(session, fake, "GET", f"{r}/tarball/main", token)
    assert status == 200

    manifest_flow = fake.description.has_operation("apps/create-from-manifest")
    if manifest_flow:  # last: the fake becomes the new App
        form = {"manifest": json.dumps({"url": "https://x.test", "redirect_url": "http://cb.test"})}
        async with session.post(
            f"{fake.url}/settings/apps/new", data=form, allow_redirects=False
        ) as page:
            code = page.headers["location"].rpartition("code=")[2]
        assert (await api.post(f"/app-manifests/{code}/conversions", data=b""))["pem"]

    served = {q.operation_id for q in fake.requests if q.operation_id and q.status < 400}
    assert served == set(fake.description.operation_ids())
    assert len(served) == len(OPERATIONS) + (len(SUPPLEMENT_OPERATIONS) if manifest_flow else 0)
    assert fake.issue_comment_store[comment["id"]].body == "report v2"
    assert [x.content for x in fake.reactions(human.id)] == ["+1"]
    assert fake.review_comments(REPO, n)[0].line == 2  # the review's comment; the other deleted
    assert [x.state for x in fake.reviews(REPO, n)] == ["COMMENTED", "DISMISSED"]


@pytest.mark.asyncio
async def test_review_comment_outside_the_diff_is_githubs_422_not_a_violation(
    fake: FakeGitHub, session: aiohttp.ClientSession
) -> None:
    pr = seeded(fake)
    token = await installation_token(gh(session, fake), fake, pr.installation.id)
    with pytest.raises(BadRequest) as raised:
        await gh(session, fake).post(
            f"/repos/{REPO}/pulls/{pr.pull.number}/comments",
            data={"body": "x", "commit_id": pr.head_sha, "path": "README.md", "line": 1},
            oauth_token=token,
        )
    assert raised.value.status_code == 422
    assert fake.violations == []
    assert fake.errors[-1][1] == 422


# ----- faults and rate limits ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_faults_are_injected_and_rate_limit_headers_always_sent(
    fake: FakeGitHub, session: aiohttp.ClientSession
) -> None:
    pr = seeded(fake)
    token = await installation_token(gh(session, fake), fake, pr.installation.id)
    path = f"/repos/{REPO}/pulls/{pr.pull.number}"
    fake.fail_next("GET", "/repos/{owner}/{repo}/pulls/{pull_number}", 502, times=2)
    fake.secondary_rate_limit_next("GET", r"/repos/acme/shop/pulls/\d+", retry_after=7)
    fake.primary_rate_limit_next("*", "/repos/{owner}/{repo}/pulls/{pull_number}", reset_in=30)
    answers = [await raw(session, fake, "GET", path, token) for _ in range(5)]
    assert [status for status, _, _ in answers] == [502, 502, 403, 403, 200]
    assert answers[2][1]["retry-after"] == "7"
    assert answers[3][1]["x-ratelimit-remaining"] == "0"
    assert int(answers[3][1]["x-ratelimit-reset"]) >= int(fake.now()) + 29
    for _, headers, _ in answers:
        assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= set(headers)
    assert int(answers[4][1]["x-ratelimit-remaining"]) < 5000

    with pytest.raises(GitHubBroken):
        fake.fail_next("POST", "/repos/{owner}/{repo}/check-runs", 502)
        await gh(session, fake).post(
            f"/repos/{REPO}/check-runs",
            data={"name": "m", "head_sha": pr.head_sha},
            oauth_token=token,
        )
    assert fake.check_runs(REPO) == []


# ----- webhook payloads ---------------------------------------------------------------------


def _payload_cases(fake: FakeGitHub) -> list[tuple[str, dict[str, Any]]]:
    pr = seeded(fake)
    fork = seed_pull_request(
        fake,
        REPO,
        base_files={},
        head_files={"evil.py": "x\n"},
        head_branch="evil",
        author="mallory",
        fork_owner="mallory",
    )
    team = fake.add_team("acme", "dba", {"alice": "member"})
    comment = fake.add_issue_comment(REPO, pr.pull.number, "alice", "/migsafe rerun")
    review = fake.add_review(REPO, pr.pull.number, "bob", "APPROVED", "lgtm")
    run = CheckRun(
        id=77,
        repo=REPO,
        head_sha=pr.head_sha,
        name="migsafe",
        status="completed",
        conclusion="failure",
        started_at=fake.now(),
        completed_at=fake.now(),
        details_url=None,
        external_id="",
        output={"title": "t", "summary": "s", "text": None},
        app_id=fake.app_id,
        check_suite_id=78,
    )
    fake.check_run_store[run.id] = run
    i = pr.installation.id
    cases: list[tuple[str, dict[str, Any]]] = []
    for action in ("opened", "synchronize", "reopened", "closed", "labeled"):
        cases.append(
            ("pull_request", payloads.pull_request_event(fake, action, pr.repo, pr.pull, i))
        )
    base_change = {"base": {"ref": {"from": "develop"}, "sha": {"from": pr.base_sha}}}
    cases.append(
        (
            "pull_request",
            payloads.pull_request_event(fake, "edited", pr.repo, pr.pull, i, changes=base_change),
        )
    )
    cases.append(
        ("pull_request", payloads.pull_request_event(fake, "opened", pr.repo, fork.pull, i))
    )
    for action in ("submitted", "dismissed", "edited"):
        cases.append(
            (
                "pull_request_review",
                payloads.review_event(fake, pr.repo, pr.pull, review, i, action=action),
            )
        )
    cases.append(
        ("issue_comment", payloads.issue_comment_on_pr(fake, pr.repo, pr.pull, comment, i))
    )
    for action in ("rerequested", "requested_action", "created", "completed"):
        cases.append(("check_run", payloads.check_run_event(fake, action, run, i)))
    for action in ("requested", "rerequested"):
        cases.append(
            (
                "check_suite",
                payloads.check_suite_event(
                    fake, action, pr.repo, pr.head_sha, i, head_branch="feature", pulls=[pr.pull]
                ),
            )
        )
    for action in ("added", "removed"):
        cases.append(
            ("membership", payloads.membership_event(fake, action, "acme", team, "alice", i))
        )
    for action in ("created", "deleted"):
        cases.append(("installation", payloads.installation_event(fake, action, pr.installation)))
    cases.append(
        (
            "installation_repositories",
            payloads.installation_repositories_event(fake, pr.installation, added=[pr.repo]),
        )
    )
    cases.append(("ping", payloads.ping(fake)))
    return cases


def test_builders_validate_against_the_webhook_schemas(github_shared_dir: Path) -> None:
    fake = FakeGitHub(github_shared_dir)
    fake.url = "http://127.0.0.1:9"
    cases = _payload_cases(fake)
    assert len(cases) == 23
    for event, payload in cases:
        assert payloads.validate_webhook(event, payload) == [], (event, payload.get("action"))


def test_builders_carry_the_fakes_state(github_shared_dir: Path) -> None:
    fake = FakeGitHub(github_shared_dir)
    fake.url = "http://127.0.0.1:9"
    cases = dict((f"{e}.{p.get('action')}", p) for e, p in _payload_cases(fake))
    opened = cases["pull_request.opened"]  # the fork PR: the last 'opened' built
    assert opened["pull_request"]["head"]["repo"]["full_name"] == "mallory/shop"
    assert opened["pull_request"]["base"]["repo"]["full_name"] == REPO
    assert opened["repository"]["full_name"] == REPO
    assert opened["installation"]["id"] == next(iter(fake.installations))
    comment = cases["issue_comment.created"]
    assert comment["issue"]["pull_request"]["url"].endswith(f"/repos/{REPO}/pulls/1")
    assert comment["comment"]["body"] == "/migsafe rerun"
    assert comment["sender"]["login"] == "alice"
    sync = cases["pull_request.synchronize"]
    assert sync["after"] == sync["pull_request"]["head"]["sha"]
    assert cases["pull_request_review.dismissed"]["review"]["state"] == "dismissed"


def test_an_invalid_payload_is_caught_by_the_schemas(github_shared_dir: Path) -> None:
    example = payloads.load_example("pull_request.opened")
    assert payloads.validate_webhook("pull_request", example) == []
    example["pull_request"]["head"]["sha"] = 42
    del example["installation"]["id"]
    problems = payloads.validate_webhook("pull_request", example)
    assert problems, "the schemas accepted a broken payload"


def test_delivery_is_signed_like_github(github_shared_dir: Path) -> None:
    import hashlib
    import hmac
    import json

    headers, body = payloads.delivery("ping", payloads.load_example("ping"), "s3cret")
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Hub-Signature-256"] == expected
    assert headers["X-GitHub-Event"] == "ping"
    assert len(headers["X-GitHub-Delivery"]) == 36
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["zen"]


def test_routing_accepts_slashes_where_github_does(github_shared_dir: Path) -> None:
    description = GitHubDescription.load(github_shared_dir)
    route = description.route("GET", "/repos/a/b/contents/.github/migsafe.yml")
    assert route.operation.operation_id == "repos/get-content"
    assert route.path_params["path"] == ".github/migsafe.yml"
    assert description.route("PATCH", "/repos/a/b/pulls/comments/5").path_params == {
        "owner": "a",
        "repo": "b",
        "comment_id": "5",
    }


@pytest.mark.asyncio
async def test_fixture_serves_a_fork_pull_request_and_an_org(
    fake_github: FakeGitHub, session: aiohttp.ClientSession
) -> None:
    fork = seed_pull_request(
        fake_github,
        REPO,
        base_files={"README.md": "shop\n"},
        head_files={MIGRATION: MIGRATION_TEXT},
        head_branch="patch-1",
        author="mallory",
        fork_owner="mallory",
    )
    seed_org(fake_github, "acme", {"dba": {"alice": "member"}})
    fake_github.set_membership("acme", "dba", "carol", state="pending")
    api = gh(session, fake_github)
    token = await installation_token(api, fake_github, fork.installation.id)

    pull = await api.getitem(f"/repos/{REPO}/pulls/{fork.pull.number}", oauth_token=token)
    assert pull["head"]["repo"]["full_name"] == "mallory/shop"
    assert pull["head"]["repo"]["fork"] is True
    # The fork's head commit is reachable from the base repository, as on GitHub.
    status, _, body = await raw(
        session, fake_github, "GET", f"/repos/{REPO}/tarball/{fork.head_sha}", token
    )
    assert status == 200
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        assert f"acme-shop-{fork.head_sha[:7]}/{MIGRATION}" in archive.getnames()
    permission = await api.getitem(
        f"/repos/{REPO}/collaborators/mallory/permission", oauth_token=token
    )
    assert permission["permission"] == "read"
    pending = await api.getitem("/orgs/acme/teams/dba/memberships/carol", oauth_token=token)
    assert pending["state"] == "pending"
    members = await api.getitem("/orgs/acme/teams/dba/members", oauth_token=token)
    assert [m["login"] for m in members] == ["alice"]
    # A second token request is counted: the bot's cache is tested against this number.
    await installation_token(api, fake_github, fork.installation.id)
    assert fake_github.tokens_issued(fork.installation.id) == 2


def test_fixture_fails_the_test_that_broke_the_description(tmp_path: Path) -> None:
    require_shared_github_dir()
    (tmp_path / "test_bad_client.py").write_text(
        "import aiohttp, pytest\n"
        "@pytest.mark.asyncio\n"
        "async def test_bad(fake_github):\n"
        "    async with aiohttp.ClientSession() as s:\n"
        "        async with s.get(fake_github.url + '/repos/a/b/nowhere',\n"
        "                         headers={'User-Agent': 'x'}) as r:\n"
        "            assert r.status == 404\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "tests.fakegithub.conftest_plugin",
            str(tmp_path / "test_bad_client.py"),
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 passed, 1 error" in result.stdout
    assert "broke GitHub's OpenAPI description" in result.stdout
    assert "GET /repos/a/b/nowhere" in result.stdout
