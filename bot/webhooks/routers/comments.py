"""issue_comment: `/migsafe rerun` on a pull request (permission is checked by the job)."""

from __future__ import annotations

import re

from gidgethub import routing, sansio

from bot.jobs import plan_rerun
from bot.webhooks.routers.plan import Plan, installation_id, repo_name

router = routing.Router()

# The command on a line of its own (leading/trailing spaces allowed), anywhere in the body.
RERUN = re.compile(r"^\s*/migsafe\s+rerun\s*$", re.IGNORECASE | re.MULTILINE)


def asks_for_rerun(body: object) -> bool:
    return isinstance(body, str) and RERUN.search(body) is not None


@router.register("issue_comment", action="created")
async def rerun(event: sansio.Event, plan: Plan) -> None:
    issue, comment = event.data.get("issue") or {}, event.data.get("comment") or {}
    repo = repo_name(event.data)
    if repo is None or not issue.get("pull_request") or not asks_for_rerun(comment.get("body")):
        return
    user = comment.get("user") or {}
    if user.get("type") == "Bot":
        return  # never react to a bot, migsafe's own replies included
    plan.jobs.append(
        plan_rerun(
            repo=repo,
            number=int(issue["number"]),
            comment_id=int(comment["id"]),
            commenter=str(user.get("login", "")),
            delivery_id=plan.delivery_id,
            installation_id=installation_id(event.data),
        )
    )
