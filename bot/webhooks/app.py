"""The aiohttp application: POST /webhook, GET /healthz, /readyz, /metrics, and the
report pages GET /runs/{id} (bot.web.pages) when the queue carries the settings.

POST /webhook, in this order: read the body (over 25 MB: 413), verify
X-Hub-Signature-256 (HMAC-SHA256, constant-time: 401, nothing stored), check the headers
(400) and the content type (415: form-encoded deliveries are not read), parse the JSON
(400), let the routers pick jobs (none: 202 "ignored", nothing stored), then record the
delivery and defer its jobs in ONE transaction and answer 202. The delivery id is the
primary key: a redelivery does nothing and is answered 200 "duplicate".

Each refused delivery (413, 401, 400, 415) is logged in ONE warning line: why, the
X-GitHub-Delivery id and the X-GitHub-Event name; never the body nor the signature.

gidgethub's `Event.from_http` verifies with the same `validate_event`, but it also
accepts a SHA-1 `X-Hub-Signature` when the SHA-256 header is absent and answers bad JSON
as a 415: the handler therefore checks the header itself and calls `validate_event`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web
from gidgethub import ValidationFailure, routing, sansio

from bot import metrics
from bot.jobs import JobQueue
from bot.service_logging import one_line_cause
from bot.store import db
from bot.web.pages import add_report_routes, page_config
from bot.webhooks.routers import ROUTER
from bot.webhooks.routers.plan import Plan, installation_id, repo_name

logger = logging.getLogger("migsafe.webhooks")

MAX_BODY_BYTES = 25 * 1024 * 1024
DELIVERY_ID_MAX = 100
SIGNATURE_PREFIX = "sha256="
HEADER_LOG_MAX = 100
# No Content-Type at all (aiohttp says application/octet-stream) is taken as JSON.
ACCEPTED_CONTENT_TYPES = frozenset({"application/json", "application/octet-stream"})

SECRET_KEY = web.AppKey("webhook_secret", str)
QUEUE_KEY = web.AppKey("queue", JobQueue)
ROUTER_KEY = web.AppKey("router", routing.Router)


def build_web_app(
    *, webhook_secret: str, queue: JobQueue, router: routing.Router = ROUTER
) -> web.Application:
    """The web application; `queue` must be open (its pool serves the requests) before the
    first request."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[SECRET_KEY] = webhook_secret
    app[QUEUE_KEY] = queue
    app[ROUTER_KEY] = router
    app.router.add_post("/webhook", receive_webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_page)
    if queue.settings is not None:  # the report pages (GET /runs/{id}) need the token key
        add_report_routes(app, page_config(queue.settings, lambda: queue.pool))
    return app


def signature_is_valid(body: bytes, signature: str | None, secret: str) -> bool:
    if not signature or not signature.startswith(SIGNATURE_PREFIX):
        return False
    try:
        sansio.validate_event(body, signature=signature, secret=secret)
    except ValidationFailure:
        return False
    return True


def _status(status: int, text: str, **extra: Any) -> web.Response:
    return web.json_response({"status": text, **extra}, status=status)


def _header_for_log(request: web.Request, name: str) -> str:
    """A header of an unverified request, fit for one log line: quoted, at most 100
    characters (repr escapes anything unprintable)."""
    value = request.headers.get(name)
    if value is None:
        return "none"
    return repr(value[:HEADER_LOG_MAX] + ("…" if len(value) > HEADER_LOG_MAX else ""))


def _reject(request: web.Request, status: int, reason: str) -> web.Response:
    """Answer a delivery migsafe refuses, and say so in ONE warning line: the reason, the
    delivery id and the event name as sent. Never the body, nor the signature (the
    headers are attacker-chosen until the signature is verified: quoted and cut)."""
    logger.warning(
        "delivery %s (event %s) rejected with %s: %s",
        _header_for_log(request, "X-GitHub-Delivery"),
        _header_for_log(request, "X-GitHub-Event"),
        status,
        reason,
    )
    return _status(status, reason)


async def receive_webhook(request: web.Request) -> web.Response:
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        _reject(request, 413, f"the body is over {MAX_BODY_BYTES} bytes")
        raise
    app = request.app
    signature = request.headers.get("X-Hub-Signature-256")
    if not signature_is_valid(body, signature, app[SECRET_KEY]):
        metrics.count_delivery("unverified", None, "rejected")
        if not signature:
            return _reject(request, 401, "missing X-Hub-Signature-256")
        if not signature.startswith(SIGNATURE_PREFIX):
            return _reject(request, 401, "bad signature: X-Hub-Signature-256 is not sha256=…")
        return _reject(request, 401, "bad signature: it does not match the webhook secret")
    event_name = request.headers.get("X-GitHub-Event", "")
    delivery_id = request.headers.get("X-GitHub-Delivery", "")
    if not event_name or not delivery_id or len(delivery_id) > DELIVERY_ID_MAX:
        return _reject(request, 400, "missing X-GitHub-Event or X-GitHub-Delivery")
    if request.content_type not in ACCEPTED_CONTENT_TYPES:
        # GitHub sends form-encoded payloads when the App's webhook is set up that way.
        return _reject(
            request, 415, f"content type {request.content_type!r}: expected application/json"
        )
    try:
        data = json.loads(body)
    except ValueError:
        return _reject(request, 400, "malformed JSON")
    if not isinstance(data, dict):
        return _reject(request, 400, "the payload is not a JSON object")
    event = sansio.Event(data, event=event_name, delivery_id=delivery_id)
    plan = Plan(delivery_id)
    await app[ROUTER_KEY].dispatch(event, plan)
    action = data.get("action") if isinstance(data.get("action"), str) else None
    if plan.pong:
        metrics.count_delivery(event_name, action, "ignored")
        return _status(200, "pong")
    if not plan.jobs and not plan.closed:
        metrics.count_delivery(event_name, action, "ignored")
        return _status(202, "ignored")
    return await _accept(app[QUEUE_KEY], event, action, plan)


async def _accept(
    queue: JobQueue, event: sansio.Event, action: str | None, plan: Plan
) -> web.Response:
    delivery = db.DeliveryRecord(
        delivery_id=event.delivery_id,
        event=event.event,
        action=action,
        installation_id=installation_id(event.data),
        repo=repo_name(event.data),
        payload=event.data,
    )
    try:
        async with queue.pool.connection() as connection, connection.transaction():
            if await db.insert_delivery(connection, delivery) is None:
                metrics.count_delivery(event.event, action, "duplicate")
                return _status(200, "duplicate")
            for head in plan.pull_requests:
                await db.record_pull_request_head(connection, head)
            for repo, number in plan.closed:
                await db.forget_pull_request(connection, repo=repo, number=number)
            job_ids = await queue.defer_all(connection, plan.jobs)
            await db.set_delivery_jobs(connection, event.delivery_id, job_ids)
    except Exception as error:
        # Nothing was committed: GitHub shows the failure and the delivery can be redelivered.
        logger.error(
            "delivery %s (%s) not recorded, answered 503: %s",
            event.delivery_id,
            event.event,
            one_line_cause(error),
        )
        logger.debug("delivery %s: the traceback", event.delivery_id, exc_info=error)
        return _status(503, "not recorded, please redeliver")
    metrics.count_delivery(event.event, action, "accepted")
    logger.info("delivery %s (%s) accepted: jobs %s", event.delivery_id, event.event, job_ids)
    return _status(202, "accepted", jobs=job_ids)


async def healthz(request: web.Request) -> web.Response:
    """Liveness; with ?ready=1, readiness (the database answers) as /readyz."""
    if request.query.get("ready") not in (None, "", "0"):
        return await readyz(request)
    return _status(200, "ok")


async def readyz(request: web.Request) -> web.Response:
    pool = request.app[QUEUE_KEY].pool
    if await db.database_ready(pool):
        return _status(200, "ready")
    return _status(503, "database unreachable")


async def metrics_page(request: web.Request) -> web.Response:
    body = await metrics.render(request.app[QUEUE_KEY].pool)
    return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})
