"""One gidgethub router per concern (as python/bedevere does); together, `ROUTER`.

Routers run inside the request and only decide: each callback adds the jobs an event
calls for to the request's `Plan` (`bot.webhooks.routers.plan`). They never call GitHub;
the jobs do.
"""

from __future__ import annotations

from gidgethub import routing

from bot.webhooks.routers import (
    checks,
    comments,
    installations,
    membership,
    ping,
    pull_request,
    reviews,
)

ROUTER = routing.Router(
    pull_request.router,
    reviews.router,
    comments.router,
    checks.router,
    installations.router,
    membership.router,
    ping.router,
)
