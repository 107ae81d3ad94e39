"""The service on a real PostgreSQL (the `state` database of tests/statedb.py).

Jobs run the real procrastinate tasks; only the handlers (bot.jobs.Handlers, the seam to
the check pipeline) are the test's own, recording what they were asked to do.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient

from bot.jobs import Handlers, JobQueue, ServiceContext
from bot.store import db
from bot.webhooks.app import build_web_app
from tests.fakegithub import WEBHOOKS_RELATIVE, require_shared_github_dir

SECRET = "test-webhook-secret"


# -- handlers that record ----------------------------------------------------------------------


@dataclass
class Recorder:
    """Handlers for the real tasks: they record each call (and can be told to fail)."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    pull_requests_by_sha: dict[str, list[int]] = field(default_factory=dict)
    failures_left: int = 0

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def handlers(self) -> Handlers:
        def record(name: str) -> Any:
            async def handler(ctx: ServiceContext, **kwargs: Any) -> None:
                self.calls.append((name, kwargs))
                if self.failures_left > 0:
                    self.failures_left -= 1
                    raise RuntimeError(f"{name}: failing on purpose")

            return handler

        async def lookup(ctx: ServiceContext, *, repo: str, head_sha: str, **_: Any) -> list[int]:
            self.calls.append(("pull_requests_for_commit", {"repo": repo, "head_sha": head_sha}))
            return self.pull_requests_by_sha.get(head_sha, [])

        return Handlers(
            check_pull_request=record("check_pull_request"),
            pull_requests_for_commit=lookup,
            evaluate_gate=record("evaluate_gate"),
            rerun_command=record("rerun_command"),
            forget_membership=record("forget_membership"),
            record_installation=record("record_installation"),
        )


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest_asyncio.fixture
async def queue(state: str, recorder: Recorder) -> AsyncIterator[JobQueue]:
    pool = await db.open_pool(state, max_size=5)
    job_queue = JobQueue(state, handlers=recorder.handlers())
    await job_queue.open(pool)
    yield job_queue
    await job_queue.close()
    await pool.close()


@pytest_asyncio.fixture
async def client(queue: JobQueue, aiohttp_client: Any) -> TestClient[Any, Any]:
    app = build_web_app(webhook_secret=SECRET, queue=queue)
    test_client: TestClient[Any, Any] = await aiohttp_client(app)
    return test_client


# -- deliveries --------------------------------------------------------------------------------


def example(name: str) -> dict[str, Any]:
    """A real payload example of octokit/webhooks (`../shared/github/webhooks`, else the
    pinned npm package; the test skips where neither can be had)."""
    path = require_shared_github_dir() / WEBHOOKS_RELATIVE / f"{name}.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def delivery_headers(
    event: str, body: bytes, *, delivery_id: str | None = None, secret: str = SECRET
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(body, secret),
    }


async def deliver(
    client: TestClient[Any, Any],
    event: str,
    payload: dict[str, Any],
    *,
    delivery_id: str | None = None,
) -> tuple[int, dict[str, Any]]:
    body = json.dumps(payload).encode()
    headers = delivery_headers(event, body, delivery_id=delivery_id)
    response = await client.post("/webhook", data=body, headers=headers)
    return response.status, await response.json()
