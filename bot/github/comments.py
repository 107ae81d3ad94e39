"""Inline review comments that are updated on a re-run instead of piling up.

Each comment migsafe writes carries a hidden marker, `<!-- migsafe:finding:<fingerprint> -->`,
with the finding's fingerprint (rule, file, revision, phase and the statement: stable when
lines move). A re-run plans, purely, which comments to create, which to edit and which of
migsafe's own to delete; `sync_review_comments` then carries the plan out.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import gidgethub
import gidgethub.abc

from bot.analysis.model import Family, Finding, RuleInfo, Severity
from bot.github.client import get_list, repo_vars
from bot.report.sarif import fingerprint

logger = logging.getLogger("bot.github")

MARKER = "<!-- migsafe:finding:{} -->"
_MARKER_RE = re.compile(r"<!-- migsafe:finding:([0-9a-f]+(?::\d+)?) -->")


@dataclass(frozen=True)
class ReviewComment:
    """A comment migsafe wants on `path` at `line` (right side: the PR's version)."""

    fingerprint: str
    path: str
    line: int
    text: str  # markdown, without the marker
    suggestion: str | None = None  # replacement for `line`, shown as a suggestion block

    @property
    def body(self) -> str:
        sections = [self.text.strip()]
        if self.suggestion is not None:
            sections.append(_suggestion_block(self.suggestion))
        return MARKER.format(self.fingerprint) + "\n" + "\n\n".join(sections)


@dataclass(frozen=True)
class ExistingComment:
    """A review comment on the pull request, as listed by GitHub."""

    id: int
    body: str
    path: str
    line: int | None  # None: outdated (its line is no longer in the diff)
    user_login: str
    user_type: str  # "Bot" for apps
    in_reply_to_id: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExistingComment:
        user = data.get("user") or {}
        return cls(
            id=int(data["id"]),
            body=data.get("body") or "",
            path=data.get("path") or "",
            line=data.get("line"),
            user_login=user.get("login") or "",
            user_type=user.get("type") or "",
            in_reply_to_id=data.get("in_reply_to_id"),
        )

    @property
    def fingerprint(self) -> str | None:
        found = _MARKER_RE.search(self.body)
        return found.group(1) if found else None


@dataclass
class CommentPlan:
    create: list[ReviewComment] = field(default_factory=list)
    update: list[tuple[int, ReviewComment]] = field(default_factory=list)  # (comment id, new)
    delete: list[int] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)


def is_migsafe_comment(comment: ExistingComment, bot_login: str | None = None) -> bool:
    """Written by migsafe: a bot account (the app's, when its login is known) and a marker.

    A human quoting the marker does not make their comment migsafe's to delete.
    """
    if comment.user_type != "Bot" or comment.fingerprint is None:
        return False
    return bot_login is None or comment.user_login.lower() == bot_login.lower()


def plan_comment_sync(
    existing: Iterable[ExistingComment],
    wanted: Sequence[ReviewComment],
    *,
    bot_login: str | None = None,
) -> CommentPlan:
    """Keep one comment per wanted fingerprint: edit it when its body changed, recreate it
    when it sits elsewhere (or is outdated), create what is missing, delete migsafe's others
    (superseded findings and duplicates)."""
    plan = CommentPlan()
    wanted_by_print = {comment.fingerprint: comment for comment in wanted}
    kept: set[str] = set()
    for comment in existing:
        if not is_migsafe_comment(comment, bot_login):
            continue
        print_ = comment.fingerprint or ""
        target = wanted_by_print.get(print_)
        if target is None or print_ in kept or not _same_place(comment, target):
            plan.delete.append(comment.id)
            continue
        kept.add(print_)
        if _normalized(comment.body) != _normalized(target.body):
            plan.update.append((comment.id, target))
    plan.create = [c for c in wanted_by_print.values() if c.fingerprint not in kept]
    return plan


def _same_place(comment: ExistingComment, target: ReviewComment) -> bool:
    return comment.path == target.path and comment.line == target.line


def comment_fingerprints(findings: Sequence[Finding]) -> list[str]:
    """One per finding; the same finding twice gets `:2`, `:3`… (as the SARIF report does)."""
    seen: dict[str, int] = {}
    prints = []
    for finding in findings:
        base = fingerprint(finding)
        seen[base] = seen.get(base, 0) + 1
        prints.append(base if seen[base] == 1 else f"{base}:{seen[base]}")
    return prints


def wants_review_comment(finding: Finding, rules: Mapping[str, RuleInfo]) -> bool:
    """The findings worth a comment on the line: unsuppressed errors and destructive changes,
    placed on a line of a file."""
    if finding.suppressed or finding.path is None or finding.line is None:
        return False
    info = rules.get(finding.rule)
    destructive = info is not None and info.family is Family.DESTRUCTIVE
    return finding.severity is Severity.ERROR or destructive


def review_comments_for(
    findings: Sequence[Finding],
    rules: Mapping[str, RuleInfo],
    suggestions: Mapping[str, str] | None = None,
) -> list[ReviewComment]:
    """The comments for the findings that matter; `suggestions` maps a fingerprint to the
    replacement line(s) of a mechanical fix."""
    comments = []
    for finding, print_ in zip(findings, comment_fingerprints(findings), strict=True):
        if not wants_review_comment(finding, rules) or finding.path is None:
            continue
        comments.append(
            ReviewComment(
                fingerprint=print_,
                path=finding.path,
                line=max(finding.line or 1, 1),
                text=_finding_text(finding),
                suggestion=(suggestions or {}).get(print_),
            )
        )
    return comments


def _finding_text(finding: Finding) -> str:
    lines = [f"**migsafe `{finding.rule}`** ({finding.severity.value}): {finding.message}"]
    if finding.advice:
        lines.append(f"**Safe alternative:** {finding.advice}")
    return "\n\n".join(lines)


def _suggestion_block(replacement: str) -> str:
    fence = "```"
    while fence in replacement:
        fence += "`"
    return f"{fence}suggestion\n{replacement.rstrip(chr(10))}\n{fence}"


@dataclass
class SyncOutcome:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    skipped: list[str] = field(default_factory=list)  # "path:line: why" (e.g. not in the diff)


async def sync_review_comments(
    api: gidgethub.abc.GitHubAPI,
    repo: str,
    number: int,
    commit_id: str,
    wanted: Sequence[ReviewComment],
    *,
    bot_login: str | None = None,
) -> SyncOutcome:
    """Bring migsafe's review comments on the pull request in line with `wanted`."""
    pull = {**repo_vars(repo), "pull_number": str(number)}
    listed = await get_list(api, "/repos/{owner}/{repo}/pulls/{pull_number}/comments", pull)
    existing = [ExistingComment.from_json(item) for item in listed]
    plan = plan_comment_sync(existing, wanted, bot_login=bot_login)
    outcome = SyncOutcome()
    for comment_id in plan.delete:
        await _delete(api, repo, comment_id)
        outcome.deleted += 1
    for comment_id, comment in plan.update:
        await api.patch(
            "/repos/{owner}/{repo}/pulls/comments/{comment_id}",
            {**repo_vars(repo), "comment_id": str(comment_id)},
            data={"body": comment.body},
        )
        outcome.updated += 1
    for comment in plan.create:
        if await _create(api, pull, commit_id, comment):
            outcome.created += 1
        else:
            outcome.skipped.append(f"{comment.path}:{comment.line}: not part of the diff")
    return outcome


async def _delete(api: gidgethub.abc.GitHubAPI, repo: str, comment_id: int) -> None:
    try:
        await api.delete(
            "/repos/{owner}/{repo}/pulls/comments/{comment_id}",
            {**repo_vars(repo), "comment_id": str(comment_id)},
        )
    except gidgethub.BadRequest as error:
        if error.status_code != HTTPStatus.NOT_FOUND:  # already gone is what we wanted
            raise


async def _create(
    api: gidgethub.abc.GitHubAPI,
    pull: dict[str, str],
    commit_id: str,
    comment: ReviewComment,
) -> bool:
    """False when GitHub refuses the line (422: it is not part of the pull request's diff)."""
    try:
        await api.post(
            "/repos/{owner}/{repo}/pulls/{pull_number}/comments",
            pull,
            data={
                "body": comment.body,
                "commit_id": commit_id,
                "path": comment.path,
                "line": comment.line,
                "side": "RIGHT",
            },
        )
    except gidgethub.BadRequest as error:
        if error.status_code != HTTPStatus.UNPROCESSABLE_ENTITY:
            raise
        logger.info("review comment on %s:%d refused: %s", comment.path, comment.line, error)
        return False
    return True


def _normalized(body: str) -> str:
    return body.replace("\r\n", "\n").strip()
