"""Prometheus metrics of the GitHub App, on their own registry (served at GET /metrics).

The GitHub client reports through `record_github_call` and `set_rate_limit_remaining`;
jobs by state are read from procrastinate's table at scrape time, so every replica
reports the same queue.
"""

from __future__ import annotations

import contextlib

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from psycopg_pool import AsyncConnectionPool

from bot.store import db

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
JOB_STATUSES = ("todo", "doing", "succeeded", "failed", "cancelled", "aborting", "aborted")

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

DELIVERIES = Counter(
    "migsafe_webhook_deliveries",
    "Webhook deliveries by event, action and outcome "
    "(accepted, duplicate, ignored, rejected; rejected ones are not trusted: event 'unverified').",
    ["event", "action", "outcome"],
    registry=REGISTRY,
)
JOBS = Gauge(
    "migsafe_jobs",
    "Jobs in procrastinate's queue by status (read at scrape time).",
    ["status"],
    registry=REGISTRY,
)
CHECK_DURATION = Histogram(
    "migsafe_check_duration_seconds",
    "Duration of a pull request check job, from start to completed check run.",
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
    registry=REGISTRY,
)
GITHUB_CALLS = Counter(
    "migsafe_github_api_calls",
    "GitHub API calls by route template and HTTP status.",
    ["route", "status"],
    registry=REGISTRY,
)
RATE_LIMIT_REMAINING = Gauge(
    "migsafe_github_rate_limit_remaining",
    "x-ratelimit-remaining of the last GitHub answer, per installation and resource.",
    ["installation", "resource"],
    registry=REGISTRY,
)


def count_delivery(event: str, action: str | None, outcome: str) -> None:
    DELIVERIES.labels(event=event, action=action or "", outcome=outcome).inc()


def observe_check_duration(seconds: float) -> None:
    CHECK_DURATION.observe(seconds)


def record_github_call(route: str, status: int) -> None:
    """For the GitHub client. `route` is the template ("/repos/{owner}/{repo}/check-runs"),
    never the expanded path: labels must stay few."""
    GITHUB_CALLS.labels(route=route, status=str(status)).inc()


def set_rate_limit_remaining(
    installation_id: int | None, remaining: int, resource: str = "core"
) -> None:
    """For the GitHub client, from each answer's x-ratelimit-remaining (and -resource)."""
    RATE_LIMIT_REMAINING.labels(
        installation=str(installation_id) if installation_id is not None else "app",
        resource=resource,
    ).set(remaining)


async def render(pool: AsyncConnectionPool | None) -> bytes:
    """The exposition text; the job gauge is refreshed from the database when reachable."""
    if pool is not None:
        await _refresh_job_gauge(pool)
    return generate_latest(REGISTRY)


async def _refresh_job_gauge(pool: AsyncConnectionPool) -> None:
    # A scrape while the database is down still answers, with the last known values.
    with contextlib.suppress(Exception):
        async with pool.connection(timeout=2.0) as connection:
            counts = await db.count_jobs_by_status(connection)
        for status in sorted(set(JOB_STATUSES) | set(counts)):
            JOBS.labels(status=status).set(counts.get(status, 0))
