"""A pull request as GitHub says it is now: the fields the check, the gate and the commands
read, typed once instead of looked up in GitHub's JSON at every use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.github.client import InstallationAPI
from bot.github.pulls import get_pull


@dataclass(frozen=True)
class PullRequest:
    repo: str  # owner/name of the base repository
    number: int
    state: str  # "open", "closed"
    head_sha: str
    head_repo: str | None  # owner/name the head comes from; None when it was deleted
    base_sha: str
    base_ref: str  # the base branch
    base_html_url: str  # the base repository's page, for links into its files
    html_url: str  # the pull request's page
    author: str
    labels: tuple[str, ...] = ()
    body: str = ""

    @classmethod
    def from_json(cls, repo: str, data: dict[str, Any]) -> PullRequest:
        head, base = data["head"], data["base"]
        return cls(
            repo=repo,
            number=int(data["number"]),
            state=str(data["state"]),
            head_sha=str(head["sha"]),
            head_repo=(head.get("repo") or {}).get("full_name"),
            base_sha=str(base["sha"]),
            base_ref=str(base["ref"]),
            base_html_url=str((base.get("repo") or {}).get("html_url", "")),
            html_url=str(data["html_url"]),
            author=str((data.get("user") or {}).get("login", "")),
            labels=tuple(label["name"] for label in data.get("labels", [])),
            body=data.get("body") or "",
        )

    @property
    def from_fork(self) -> bool:
        return self.head_repo != self.repo

    @property
    def name(self) -> str:
        """`owner/repo#12`, for log lines."""
        return f"{self.repo}#{self.number}"


async def fetch_pull_request(api: InstallationAPI, repo: str, number: int) -> PullRequest:
    return PullRequest.from_json(repo, await get_pull(api, repo, number))
