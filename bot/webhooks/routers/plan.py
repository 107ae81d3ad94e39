"""What one delivery calls for (`Plan`), and what the routers read from every payload.

Each router callback adds the jobs an event calls for to the request's `Plan` (and the pull
request heads it reveals); the webhook handler then defers them.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from gidgethub import sansio

from bot.jobs import PlannedJob, PullRequestJob, plan_check, plan_gate
from bot.store.db import PullRequestHead


@dataclass
class Plan:
    """What one delivery calls for; filled in by the routers."""

    delivery_id: str
    jobs: list[PlannedJob] = field(default_factory=list)
    pull_requests: list[PullRequestHead] = field(default_factory=list)
    closed: list[tuple[str, int]] = field(default_factory=list)  # (repo, number) to forget
    pong: bool = False


def repo_name(data: dict[str, Any]) -> str | None:
    repository = data.get("repository")
    return str(repository["full_name"]) if isinstance(repository, dict) else None


def installation_id(data: dict[str, Any]) -> int | None:
    installation = data.get("installation")
    return int(installation["id"]) if isinstance(installation, dict) else None


def trigger_of(event: sansio.Event) -> str:
    action = event.data.get("action")
    return f"{event.event}.{action}" if action else event.event


def pull_request_head(repo: str, pull_request: dict[str, Any]) -> PullRequestHead:
    return PullRequestHead(
        repo=repo,
        number=int(pull_request["number"]),
        head_sha=str(pull_request["head"]["sha"]),
        base_ref=pull_request.get("base", {}).get("ref"),
        github_updated_at=_timestamp(pull_request.get("updated_at")),
    )


def _timestamp(value: object) -> datetime.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def add_pull_request_job(event: sansio.Event, plan: Plan, *, gate: bool) -> None:
    """A check (or a gate evaluation) of the event's `pull_request`, at its head."""
    repo = repo_name(event.data)
    pull_request = event.data.get("pull_request")
    if repo is None or not isinstance(pull_request, dict):
        return
    head = pull_request_head(repo, pull_request)
    plan.pull_requests.append(head)
    job = PullRequestJob(
        repo=repo,
        number=head.number,
        head_sha=head.head_sha,
        delivery_id=plan.delivery_id,
        installation_id=installation_id(event.data),
        trigger=trigger_of(event),
    )
    plan.jobs.append(plan_gate(job) if gate else plan_check(job))
