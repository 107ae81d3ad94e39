"""GET /healthz, /readyz and /metrics."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot import metrics
from bot.jobs import JobQueue
from bot.store import db
from bot.webhooks.app import build_web_app
from tests.service.conftest import SECRET, Recorder, deliver, example

pytestmark = pytest.mark.asyncio

Client = TestClient[Any, Any]


async def test_healthz_is_alive(client: Client) -> None:
    response = await client.get("/healthz")
    assert (response.status, await response.json()) == (200, {"status": "ok"})


@pytest.mark.parametrize("path", ["/readyz", "/healthz?ready=1"])
async def test_ready_when_the_database_answers(client: Client, path: str) -> None:
    response = await client.get(path)
    assert (response.status, (await response.json())["status"]) == (200, "ready")


async def test_not_ready_when_the_database_is_gone(
    state: str, recorder: Recorder, aiohttp_client: Any
) -> None:
    pool = await db.open_pool(state, max_size=2)
    queue = JobQueue(state, handlers=recorder.handlers())
    await queue.open(pool)
    client: Client = await aiohttp_client(build_web_app(webhook_secret=SECRET, queue=queue))
    await pool.close()  # as when PostgreSQL goes away
    response = await client.get("/readyz")
    assert (response.status, (await response.json())["status"]) == (503, "database unreachable")
    assert (await client.get("/healthz")).status == 200  # alive all the same
    await queue.close()


async def test_metrics_count_deliveries_and_jobs(client: Client) -> None:
    before = _sample("migsafe_webhook_deliveries_total", "pull_request", "opened", "accepted")
    await deliver(client, "pull_request", example("pull_request.opened"))
    await deliver(client, "star", {"action": "created"})
    response = await client.get("/metrics")
    text = await response.text()
    assert response.status == 200 and response.content_type == "text/plain"
    after = _sample("migsafe_webhook_deliveries_total", "pull_request", "opened", "accepted")
    assert after == before + 1
    assert 'migsafe_jobs{status="todo"} 1.0' in text
    assert (
        'migsafe_webhook_deliveries_total{action="created",event="star",outcome="ignored"}' in text
    )
    assert "migsafe_check_duration_seconds_bucket" in text


def _sample(name: str, event: str, action: str, outcome: str) -> float:
    labels = {"event": event, "action": action, "outcome": outcome}
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0
