"""The aiohttp application: POST /webhook, GET /healthz, /readyz, /metrics, and the
report pages GET /runs/{id} (bot.web.pages) when the queue carries the settings.

POST /webhook, in this order: read the body (over 25 MB: 413), verify
X-Hub-Signature-256 (HMAC-SHA256, constant-time: 401, nothing stored), parse the JSON
(400), let the routers pick jobs (none: 202 "ignored", nothing stored), then record the
delivery and defer its jobs in ONE transaction and answer 202. The delivery id is the
primary key: a redelivery does nothing and is answered 200 "duplicate".

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
from bot.store import db
from bot.web.pages import add_report_routes, page_config
from bot.webhooks.routers import ROUTER, Plan, installation_id, repo_name

logger = logging.getLogger("migsafe.webhooks")

MAX_BODY_BYTES = 25 * 1024 * 1024
DELIVERY_ID_MAX = 100
SIGNATURE_PREFIX = "sha256="

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


async def receive_webhook(request: web.Request) -> web.Response:
    body = await request.read()  # beyond client_max_size aiohttp answers 413 itself
    app = request.app
    if not signature_is_valid(body, request.headers.get("X-Hub-Signature-256"), app[SECRET_KEY]):
        metrics.count_delivery("unverified", None, "rejected")
        return _status(401, "bad signature")
    event_name = request.headers.get("X-GitHub-Event", "")
    delivery_id = request.headers.get("X-GitHub-Delivery", "")
    if not event_name or not delivery_id or len(delivery_id) > DELIVERY_ID_MAX:
        return _status(400, "missing X-GitHub-Event or X-GitHub-Delivery")
    try:
        data = json.loads(body)
    except ValueError:
        return _status(400, "malformed JSON")
    if not isinstance(data, dict):
        return _status(400, "the payload is not a JSON object")
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
    except Exception:
        # Nothing was committed: GitHub shows the failure and the delivery can be redelivered.
        logger.exception("delivery %s (%s) not recorded", event.delivery_id, event.event)
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
