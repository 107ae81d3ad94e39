"""The client against the fake GitHub: tokens, retries, rate limits, pagination, logs."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import gidgethub
import pytest

from bot.github.client import RateLimited, RetryPolicy, delivery_id, rate_limit_wait, repo_vars
from bot.github.pulls import get_pull, pull_request_files
from bot.github.tarball import download_tree
from tests.github import FAST, INSTALLATION, REPO, world

PULL = "/repos/{owner}/{repo}/pulls/{pull_number}"


@pytest.mark.asyncio
async def test_ten_concurrent_calls_make_one_token_request() -> None:
    async with world() as w:
        pulls = await asyncio.gather(*(get_pull(w.api(), REPO, w.number) for _ in range(10)))
        assert {p["number"] for p in pulls} == {w.number}
        await get_pull(w.api(), REPO, w.number)  # a later job reuses the cached token
        assert w.fake.tokens_issued(INSTALLATION) == 1
        assert len(w.fake.requests_to("POST", "apps/create-installation-access-token")) == 1


@pytest.mark.asyncio
async def test_refused_token_is_dropped_and_the_call_retried_once() -> None:
    async with world() as w:
        await get_pull(w.api(), REPO, w.number)
        w.fake.tokens.clear()  # GitHub revoked it: the cached token now gets 401
        pull = await get_pull(w.api(), REPO, w.number)
        assert pull["number"] == w.number
        assert w.fake.tokens_issued(INSTALLATION) == 2
        assert [v for v in w.fake.pop_violations() if "Bad credentials" in v]


@pytest.mark.asyncio
async def test_502_is_retried_then_succeeds() -> None:
    async with world() as w:
        w.fake.fail_next("GET", PULL, 502)
        pull = await get_pull(w.api(), REPO, w.number)
        assert pull["number"] == w.number
        assert [r.status for r in w.fake.requests_to("GET", "pulls/get")] == [502, 200]


@pytest.mark.asyncio
async def test_persistent_5xx_gives_up_after_max_tries() -> None:
    async with world() as w:
        w.fake.fail_next("GET", PULL, 503, times=10)
        with pytest.raises(gidgethub.GitHubBroken):
            await get_pull(w.api(), REPO, w.number)
        assert len(w.fake.requests_to("GET", "pulls/get")) == FAST.max_tries


@pytest.mark.asyncio
async def test_secondary_rate_limit_honours_retry_after() -> None:
    async with world() as w:
        w.fake.secondary_rate_limit_next("GET", PULL, retry_after=1)
        started = time.monotonic()
        pull = await get_pull(w.api(), REPO, w.number)
        assert pull["number"] == w.number
        assert time.monotonic() - started >= 1.0
        assert [r.status for r in w.fake.requests_to("GET", "pulls/get")] == [403, 200]


@pytest.mark.asyncio
async def test_rate_limit_longer_than_max_wait_raises_rate_limited() -> None:
    async with world(retry=RetryPolicy(max_wait_s=2.0)) as w:
        w.fake.secondary_rate_limit_next("GET", PULL, retry_after=120)
        started = time.monotonic()
        with pytest.raises(RateLimited) as raised:
            await get_pull(w.api(), REPO, w.number)
        assert time.monotonic() - started < 1.0  # no blocking wait
        remaining = (raised.value.reset_at - datetime.now(UTC)).total_seconds()
        assert 100 < remaining <= 120


@pytest.mark.asyncio
async def test_primary_rate_limit_waits_until_reset() -> None:
    async with world() as w:
        w.fake.primary_rate_limit_next("GET", PULL, reset_in=0)
        pull = await get_pull(w.api(), REPO, w.number)
        assert pull["number"] == w.number


@pytest.mark.asyncio
async def test_primary_rate_limit_beyond_the_cap_raises_with_reset_time() -> None:
    async with world(retry=RetryPolicy(max_wait_s=5.0)) as w:
        w.fake.primary_rate_limit_next("GET", PULL, reset_in=3600)
        with pytest.raises(RateLimited) as raised:
            await get_pull(w.api(), REPO, w.number)
        assert raised.value.reset_at.timestamp() == pytest.approx(w.fake.now() + 3601, abs=5)


@pytest.mark.asyncio
async def test_pagination_over_300_pull_request_files() -> None:
    files: dict[str, bytes | str] = {f"app/module_{i:03}.py": f"x = {i}\n" for i in range(299)}
    async with world(extra_head_files=files) as w:
        changed = await pull_request_files(w.api(), REPO, w.number)
        assert len(changed) == 301  # 299 modules, the migration and the policy file
        assert len({f.filename for f in changed}) == 301
        pages = w.fake.requests_to("GET", "pulls/list-files")
        assert [r.query.get("per_page") for r in pages] == ["100"] * 4


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int, int | None]] = []

    def on_response(
        self, method: str, route_template: str, status: int, remaining: int | None
    ) -> None:
        self.calls.append((method, route_template, status, remaining))


@pytest.mark.asyncio
async def test_metrics_hook_gets_route_templates_status_and_remaining() -> None:
    recorder = Recorder()
    files: dict[str, bytes | str] = {f"app/m{i}.py": "x\n" for i in range(150)}
    async with world(metrics=recorder, extra_head_files=files) as w:
        await pull_request_files(w.api(), REPO, w.number)
    routes = [(method, route, status) for method, route, status, _ in recorder.calls]
    files_route = "/repos/{owner}/{repo}/pulls/{pull_number}/files"
    assert routes == [
        ("POST", "/app/installations/{installation_id}/access_tokens", 201),
        ("GET", files_route, 200),
        ("GET", files_route, 200),
    ]
    assert all(isinstance(remaining, int) for *_, remaining in recorder.calls)


@pytest.mark.asyncio
async def test_logs_carry_the_delivery_and_never_a_secret(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    async with world() as w:
        w.fake.fail_next("GET", PULL, 502)
        w.fake.secondary_rate_limit_next("GET", "pulls/list-files", retry_after=1)
        marker = delivery_id.set("72d3162e-cc78-11e3-81ab-4c9367dc0958")
        try:
            await get_pull(w.api(), REPO, w.number)
            await pull_request_files(w.api(), REPO, w.number)
            await download_tree(w.api(), REPO, w.head_sha, tmp_path / "tree")
            await w.github.app().getitem("/app")
            first_tokens = list(w.fake.tokens)
            w.fake.tokens.clear()  # a 401 and a token refresh, logged too
            await get_pull(w.api(), REPO, w.number)
            w.fake.pop_violations()
        finally:
            delivery_id.reset(marker)
        secrets = first_tokens + list(w.fake.tokens) + list(w.fake._codeload_tickets)
        key_lines = w.fake.private_key_pem.splitlines()[1:-1]
    text = "\n".join(
        [record.getMessage() for record in caplog.records]
        + [repr(record.__dict__) for record in caplog.records]
    )
    assert "GitHub GET /repos/octo-org/shop/pulls/1 -> 502" in text
    assert "[delivery 72d3162e-cc78-11e3-81ab-4c9367dc0958]" in text
    assert "rate limit remaining" in text
    assert len(secrets) == 3  # two installation tokens, one archive download ticket
    assert all(secret not in text for secret in secrets)
    assert all(line not in text for line in key_lines)
    assert "eyJ" not in text  # no JWT (their header always starts so)
    assert "ghs_" not in text


@pytest.mark.parametrize(
    ("status", "headers", "message", "wait"),
    [
        (403, {"retry-after": "30"}, "", 30.0),
        (429, {"retry-after": "5"}, "", 5.0),
        (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1060"}, "", 61.0),
        (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "900"}, "", 1.0),
        (403, {}, "You have exceeded a secondary rate limit.", 60.0),
        (429, {}, "", 60.0),
        (403, {"x-ratelimit-remaining": "12"}, "Resource not accessible by integration", None),
        (404, {"retry-after": "5"}, "", None),
        (502, {"retry-after": "5"}, "", None),
    ],
)
def test_rate_limit_wait(
    status: int, headers: dict[str, str], message: str, wait: float | None
) -> None:
    assert rate_limit_wait(status, headers, message, now=1000.0) == wait


@pytest.mark.parametrize("bad", ["shop", "octo-org/", "/shop", "a/b/c"])
def test_repo_vars_refuses_malformed_names(bad: str) -> None:
    with pytest.raises(ValueError, match="owner/name"):
        repo_vars(bad)
