"""installation / installation_repositories: recorded by a job (the worker also drops
what it caches for an installation that is gone)."""

from __future__ import annotations

from gidgethub import routing, sansio

from bot.jobs import plan_record_installation
from bot.webhooks.routers.plan import Plan, installation_id, trigger_of

router = routing.Router()


@router.register("installation")
@router.register("installation_repositories")
async def record(event: sansio.Event, plan: Plan) -> None:
    installation = installation_id(event.data)
    if installation is None:
        return
    plan.jobs.append(
        plan_record_installation(
            installation_id=installation,
            action=trigger_of(event),
            delivery_id=plan.delivery_id,
        )
    )
