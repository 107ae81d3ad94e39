"""check_run and check_suite "Re-run" buttons (and requested actions): check the PRs again.

`check_suite.requested` (a push) is not routed: the push's `pull_request.synchronize`
(or `opened`) already checks the head, forks included; routing both checked it twice.
A check suite or run of a fork names no pull request (`pull_requests` is empty): the job
then finds the PRs by head sha (`number=None`).
"""

from __future__ import annotations

from typing import Any

from gidgethub import routing, sansio

from bot.jobs import PullRequestJob, plan_check
from bot.webhooks.routers.plan import Plan, installation_id, repo_name, trigger_of

router = routing.Router()


def _add_checks(event: sansio.Event, plan: Plan, subject: dict[str, Any]) -> None:
    repo, head_sha = repo_name(event.data), subject.get("head_sha")
    if repo is None or not isinstance(head_sha, str):
        return
    numbers: list[int | None] = [int(pr["number"]) for pr in subject.get("pull_requests") or []]
    for number in numbers or [None]:
        plan.jobs.append(
            plan_check(
                PullRequestJob(
                    repo=repo,
                    number=number,
                    head_sha=head_sha,
                    delivery_id=plan.delivery_id,
                    installation_id=installation_id(event.data),
                    trigger=trigger_of(event),
                )
            )
        )


async def check_run(event: sansio.Event, plan: Plan) -> None:
    _add_checks(event, plan, event.data.get("check_run") or {})


async def check_suite(event: sansio.Event, plan: Plan) -> None:
    _add_checks(event, plan, event.data.get("check_suite") or {})


for _action in ("rerequested", "requested_action"):
    router.add(check_run, "check_run", action=_action)
router.add(check_suite, "check_suite", action="rerequested")
