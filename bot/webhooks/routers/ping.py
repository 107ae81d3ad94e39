"""ping: GitHub's hello when the webhook is set up; answered 200, nothing stored."""

from __future__ import annotations

from gidgethub import routing, sansio

from bot.webhooks.routers.plan import Plan

router = routing.Router()


@router.register("ping")
async def pong(event: sansio.Event, plan: Plan) -> None:
    plan.pong = True
