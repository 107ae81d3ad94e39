"""pull_request: a new head or base is checked; a label change re-evaluates the gate; a
closed PR is forgotten (no membership change re-evaluates it)."""

from __future__ import annotations

from gidgethub import routing, sansio

from bot.webhooks.routers.plan import Plan, add_pull_request_job, repo_name

router = routing.Router()

CHECKED_ACTIONS = ("opened", "synchronize", "reopened", "ready_for_review")
GATE_ACTIONS = ("labeled", "unlabeled")


async def check(event: sansio.Event, plan: Plan) -> None:
    add_pull_request_job(event, plan, gate=False)


async def check_when_base_changed(event: sansio.Event, plan: Plan) -> None:
    # A title or body edit changes nothing migsafe looks at; a new base changes the diff.
    if "base" in (event.data.get("changes") or {}):
        add_pull_request_job(event, plan, gate=False)


async def evaluate_gate(event: sansio.Event, plan: Plan) -> None:
    add_pull_request_job(event, plan, gate=True)


async def forget_closed(event: sansio.Event, plan: Plan) -> None:
    repo, pull_request = repo_name(event.data), event.data.get("pull_request")
    if repo is not None and isinstance(pull_request, dict):
        plan.closed.append((repo, int(pull_request["number"])))


for _action in CHECKED_ACTIONS:
    router.add(check, "pull_request", action=_action)
router.add(check_when_base_changed, "pull_request", action="edited")
for _action in GATE_ACTIONS:
    router.add(evaluate_gate, "pull_request", action=_action)
router.add(forget_closed, "pull_request", action="closed")
