"""membership: a team gained or lost a member; cached approver teams are forgotten."""

from __future__ import annotations

from gidgethub import routing, sansio

from bot.jobs import plan_forget_membership
from bot.webhooks.routers.plan import Plan, installation_id

router = routing.Router()


@router.register("membership")
async def forget(event: sansio.Event, plan: Plan) -> None:
    organization, member = event.data.get("organization") or {}, event.data.get("member") or {}
    if "login" not in organization or "login" not in member:
        return
    team = event.data.get("team") or {}
    plan.jobs.append(
        plan_forget_membership(
            org=str(organization["login"]),
            team_slug=team.get("slug"),
            login=str(member["login"]),
            delivery_id=plan.delivery_id,
            installation_id=installation_id(event.data),
        )
    )
