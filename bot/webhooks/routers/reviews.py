"""pull_request_review: an approval given, dismissed or edited re-evaluates the gate."""

from __future__ import annotations

from gidgethub import routing, sansio

from bot.webhooks.routers.plan import Plan, add_pull_request_job

router = routing.Router()


async def evaluate_gate(event: sansio.Event, plan: Plan) -> None:
    add_pull_request_job(event, plan, gate=True)


for _action in ("submitted", "dismissed", "edited"):
    router.add(evaluate_gate, "pull_request_review", action=_action)
