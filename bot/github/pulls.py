"""Pull requests: files, permissions, the base branch's files, reviews, replies."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Literal

import gidgethub
import gidgethub.abc

from bot.github.client import get_list, repo_vars
from bot.policy.fingerprint import matches_any

MAX_PR_FILES = 3_000  # GitHub lists at most this many files of a pull request
DEFAULT_MIGRATION_GLOBS = ("**/versions/*.py",)
WRITE_PERMISSIONS = frozenset({"admin", "maintain", "write"})
PERMISSIONS = ("admin", "maintain", "write", "triage", "read", "none")

Reaction = Literal["+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"]


@dataclass(frozen=True)
class PullFile:
    filename: str
    status: str  # added | removed | modified | renamed | copied | changed | unchanged
    sha: str | None = None
    previous_filename: str | None = None
    additions: int = 0
    deletions: int = 0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PullFile:
        return cls(
            filename=data["filename"],
            status=data["status"],
            sha=data.get("sha"),
            previous_filename=data.get("previous_filename"),
            additions=int(data.get("additions", 0)),
            deletions=int(data.get("deletions", 0)),
        )


def touches_migrations(
    files: Iterable[PullFile | str], globs: Sequence[str] = DEFAULT_MIGRATION_GLOBS
) -> list[str]:
    """The changed paths that are migrations (a rename counts by either name), in order."""
    touched: list[str] = []
    for changed in files:
        if isinstance(changed, str):
            names = [changed]
        else:
            names = [changed.filename, *filter(None, [changed.previous_filename])]
        hit = next((name for name in names if matches_any(name, globs)), None)
        if hit is not None and hit not in touched:
            touched.append(hit)
    return touched


def can_write(permission: str) -> bool:
    """May this collaborator permission ask for a sandbox run or a re-run?"""
    return permission in WRITE_PERMISSIONS


async def pull_request_files(
    api: gidgethub.abc.GitHubAPI, repo: str, number: int
) -> list[PullFile]:
    items = await get_list(
        api,
        "/repos/{owner}/{repo}/pulls/{pull_number}/files",
        {**repo_vars(repo), "pull_number": str(number)},
        limit=MAX_PR_FILES,
    )
    return [PullFile.from_json(item) for item in items]


async def get_pull(api: gidgethub.abc.GitHubAPI, repo: str, number: int) -> dict[str, Any]:
    data: dict[str, Any] = await api.getitem(
        "/repos/{owner}/{repo}/pulls/{pull_number}",
        {**repo_vars(repo), "pull_number": str(number)},
    )
    return data


async def collaborator_permission(api: gidgethub.abc.GitHubAPI, repo: str, username: str) -> str:
    """admin | maintain | write | triage | read | none; "none" for a non-collaborator (404).

    GitHub's legacy `permission` field folds maintain into write and triage into read;
    `role_name` keeps them (custom roles fall back to `permission`).
    """
    try:
        data = await api.getitem(
            "/repos/{owner}/{repo}/collaborators/{username}/permission",
            {**repo_vars(repo), "username": username},
        )
    except gidgethub.BadRequest as error:
        if error.status_code == HTTPStatus.NOT_FOUND:
            return "none"
        raise
    role = data.get("role_name")
    return role if role in PERMISSIONS else str(data.get("permission") or "none")


async def file_at_ref(api: gidgethub.abc.GitHubAPI, repo: str, path: str, ref: str) -> bytes | None:
    """A file's bytes at `ref` (e.g. the base branch, for the policy file); None if absent.

    A directory, symlink or submodule at `path` counts as absent.
    """
    try:
        data = await api.getitem(
            "/repos/{owner}/{repo}/contents/{+path}{?ref}",
            {**repo_vars(repo), "path": path.lstrip("/"), "ref": ref},
        )
    except gidgethub.BadRequest as error:
        if error.status_code == HTTPStatus.NOT_FOUND:
            return None
        raise
    if not isinstance(data, dict) or data.get("type") != "file":
        return None
    if data.get("encoding") != "base64":
        raise ValueError(f"{path}@{ref}: unexpected contents encoding {data.get('encoding')!r}")
    try:
        return base64.b64decode(data.get("content") or "", validate=False)
    except binascii.Error as error:
        raise ValueError(f"{path}@{ref}: contents are not valid base64") from error


async def list_reviews(
    api: gidgethub.abc.GitHubAPI, repo: str, number: int
) -> list[dict[str, Any]]:
    """Every review of the pull request, oldest first (each with `user`, `state`,
    `commit_id`)."""
    return await get_list(
        api,
        "/repos/{owner}/{repo}/pulls/{pull_number}/reviews",
        {**repo_vars(repo), "pull_number": str(number)},
    )


async def add_reaction(
    api: gidgethub.abc.GitHubAPI, repo: str, comment_id: int, content: Reaction
) -> None:
    """React to an issue (or PR conversation) comment, e.g. 'eyes' to acknowledge a command."""
    await api.post(
        "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions",
        {**repo_vars(repo), "comment_id": str(comment_id)},
        data={"content": content},
    )


async def create_issue_comment(
    api: gidgethub.abc.GitHubAPI, repo: str, number: int, body: str
) -> int:
    data = await api.post(
        "/repos/{owner}/{repo}/issues/{issue_number}/comments",
        {**repo_vars(repo), "issue_number": str(number)},
        data={"body": body},
    )
    return int(data["id"])
