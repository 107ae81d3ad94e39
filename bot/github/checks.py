"""Check runs: the pure shaping of output and annotations, and the two calls that send them.

GitHub's limits (NOTES.md): `output.summary`/`output.text` ≤ 65,535 characters, at most 50
annotations per request (further updates append), at most 3 requested actions.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import gidgethub.abc

from bot.analysis.model import Finding, Severity
from bot.github.client import repo_vars
from bot.result import CheckResult

MAX_TEXT = 65_535
MAX_ANNOTATIONS = 50
MAX_DETAIL = 64 * 1024 - 1
MAX_TITLE = 255

AnnotationLevel = Literal["notice", "warning", "failure"]
Conclusion = Literal[
    "success", "failure", "neutral", "cancelled", "skipped", "timed_out", "action_required"
]
T = TypeVar("T")

_LEVELS: dict[Severity, AnnotationLevel] = {
    Severity.ERROR: "failure",
    Severity.WARNING: "warning",
    Severity.NOTICE: "notice",
}


def cut_text(text: str, limit: int = MAX_TEXT) -> str:
    """`text` if it fits, else its start and a note saying how much was cut; never > limit."""
    if len(text) <= limit:
        return text
    note = f"\n\n…cut: showing {{kept:,}} of {len(text):,} characters (GitHub's limit)."
    kept = max(0, limit - len(note.format(kept=limit)))
    return (text[:kept] + note.format(kept=kept))[:limit]


def batches(items: Sequence[T], size: int = MAX_ANNOTATIONS) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


@dataclass(frozen=True)
class Annotation:
    path: str
    start_line: int
    end_line: int
    annotation_level: AnnotationLevel
    message: str
    title: str | None = None
    raw_details: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass(frozen=True)
class CheckAction:
    """A requested-action button; GitHub caps label/identifier at 20, description at 40."""

    label: str
    description: str
    identifier: str

    def __post_init__(self) -> None:
        if len(self.label) > 20 or len(self.identifier) > 20 or len(self.description) > 40:
            raise ValueError(f"check run action too long: {self}")


def annotation_for(finding: Finding) -> Annotation | None:
    """The annotation of a finding on a file line; None for suppressed or unplaced ones."""
    if finding.suppressed or finding.path is None or finding.line is None:
        return None
    line = max(finding.line, 1)
    details = [part for part in (finding.advice, finding.statement) if part]
    return Annotation(
        path=finding.path,
        start_line=line,
        end_line=line,
        annotation_level=_LEVELS[finding.severity],
        message=cut_text(finding.message, MAX_DETAIL),
        title=cut_text(f"migsafe {finding.rule}", MAX_TITLE),
        raw_details=cut_text("\n\n".join(details), MAX_DETAIL) if details else None,
    )


def annotations_for(findings: Iterable[Finding]) -> list[Annotation]:
    return [a for a in map(annotation_for, findings) if a is not None]


def conclusion_for(result: CheckResult) -> Conclusion:
    """`failure` with a blocking (unsuppressed error) finding; `neutral` when only warnings or
    notices remain (passes branch protection, but shows there is something to read);
    `success` when nothing is left."""
    if result.blocking:
        return "failure"
    if any(not f.suppressed for f in result.findings):
        return "neutral"
    return "success"


async def create_check_run(
    api: gidgethub.abc.GitHubAPI,
    repo: str,
    *,
    name: str,
    head_sha: str,
    status: Literal["queued", "in_progress"] = "in_progress",
    details_url: str | None = None,
    external_id: str | None = None,
) -> int:
    body: dict[str, Any] = {"name": name, "head_sha": head_sha, "status": status}
    if status == "in_progress":
        body["started_at"] = _now()
    if details_url is not None:
        body["details_url"] = details_url
    if external_id is not None:
        body["external_id"] = external_id
    data = await api.post("/repos/{owner}/{repo}/check-runs", repo_vars(repo), data=body)
    return int(data["id"])


async def create_completed_check_run(
    api: gidgethub.abc.GitHubAPI,
    repo: str,
    *,
    name: str,
    head_sha: str,
    conclusion: Conclusion,
    title: str,
    summary: str,
    details_url: str | None = None,
) -> int:
    """A run created already completed, in one POST (nothing can leave it in progress)."""
    now = _now()
    body: dict[str, Any] = {
        "name": name,
        "head_sha": head_sha,
        "status": "completed",
        "conclusion": conclusion,
        "started_at": now,
        "completed_at": now,
        "output": {"title": cut_text(title, MAX_TITLE), "summary": cut_text(summary)},
    }
    if details_url is not None:
        body["details_url"] = details_url
    data = await api.post("/repos/{owner}/{repo}/check-runs", repo_vars(repo), data=body)
    return int(data["id"])


async def complete_check_run(
    api: gidgethub.abc.GitHubAPI,
    repo: str,
    check_run_id: int,
    *,
    conclusion: Conclusion,
    title: str,
    summary: str,
    text: str | None = None,
    annotations: Sequence[Annotation] = (),
    actions: Sequence[CheckAction] | None = None,
    details_url: str | None = None,
) -> None:
    """Complete the run with its output and the first 50 annotations; PATCH the rest 50 at a
    time (GitHub appends annotations across updates; each update repeats the output, which
    GitHub requires to carry a title and summary)."""
    output: dict[str, Any] = {"title": cut_text(title, MAX_TITLE), "summary": cut_text(summary)}
    if text is not None:
        output["text"] = cut_text(text)
    chunks = list(batches(annotations)) or [[]]
    first: dict[str, Any] = {
        "status": "completed",
        "conclusion": conclusion,
        "completed_at": _now(),
        "output": _with_annotations(output, chunks[0]),
    }
    if actions is not None:
        first["actions"] = [asdict(action) for action in actions[:3]]
    if details_url is not None:
        first["details_url"] = details_url
    await _update(api, repo, check_run_id, first)
    for chunk in chunks[1:]:
        await _update(api, repo, check_run_id, {"output": _with_annotations(output, chunk)})


async def update_check_run(
    api: gidgethub.abc.GitHubAPI, repo: str, check_run_id: int, body: dict[str, Any]
) -> None:
    """A raw PATCH, for the cases above do not cover (e.g. back to in_progress)."""
    await _update(api, repo, check_run_id, body)


async def _update(
    api: gidgethub.abc.GitHubAPI, repo: str, check_run_id: int, body: dict[str, Any]
) -> None:
    await api.patch(
        "/repos/{owner}/{repo}/check-runs/{check_run_id}",
        {**repo_vars(repo), "check_run_id": str(check_run_id)},
        data=body,
    )


def _with_annotations(output: dict[str, Any], chunk: list[Annotation]) -> dict[str, Any]:
    if not chunk:
        return dict(output)
    return {**output, "annotations": [a.to_json() for a in chunk]}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
