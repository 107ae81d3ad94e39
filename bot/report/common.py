"""What every report format shares, so that the verdict, the counts and the rollback
command read the same in text, markdown, JSON and SARIF."""

from __future__ import annotations

from bot.analysis.migration_model import MigrationFile
from bot.analysis.model import Evidence, Finding, Severity
from bot.result import CheckResult


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def suppressed_count(result: CheckResult) -> int:
    return sum(1 for finding in result.findings if finding.suppressed)


def verdict(result: CheckResult) -> str:
    """One line, e.g.

    `migsafe: 3 errors, 2 warnings, 1 suppressed — environment production — exit 1`
    """
    parts = [
        plural(result.count(Severity.ERROR), "error"),
        plural(result.count(Severity.WARNING), "warning"),
    ]
    notices = result.count(Severity.NOTICE)
    if notices:
        parts.append(plural(notices, "notice"))
    suppressed = suppressed_count(result)
    if suppressed:
        parts.append(f"{suppressed} suppressed")
    counts = ", ".join(parts) if result.findings else "no findings"
    return f"migsafe: {counts} — environment {result.environment} — exit {result.exit_code}"


def judged_lines(result: CheckResult) -> list[tuple[str, str]]:
    """(label, text) for what the check judged and why: policy, environment, revisions."""
    judged = result.judged
    if judged is None:
        return []
    environment = judged.environment
    return [
        ("Policy", judged.policy.text),
        ("Environment", f"{environment.name} — {environment.text}"),
        ("Revisions", judged.revisions.text),
    ]


def rollback_commands(result: CheckResult) -> list[str]:
    """The command(s) that undo the change: back to each revision it starts from."""
    if not result.base:
        return ["alembic downgrade base"]
    return [f"alembic downgrade {revision}" for revision in result.base]


def location(finding: Finding) -> str | None:
    """`path:line`, `path`, or None when the finding has no place in a file."""
    if finding.path is None:
        return None
    return f"{finding.path}:{finding.line}" if finding.line is not None else finding.path


def statement_origin(path: str | None, line: int | None, revision: str | None) -> str:
    """Where a dry-run statement came from: `path:line (revision)`, as much as is known."""
    place = f"{path}:{line}" if path is not None and line is not None else path or ""
    if revision is not None:
        place = f"{place} ({revision})" if place else f"({revision})"
    return place or "(unknown origin)"


def evidence_line(evidence: Evidence) -> str:
    """An observation folded into a finding (`bot.analysis.evidence`), as one line."""
    seen = "seen in the sandbox" if evidence.source == "sandbox" else f"also ({evidence.source})"
    return f"{seen}: {evidence.message} ({evidence.rule})"


def ordered(findings: list[Finding]) -> list[Finding]:
    """Reading order: unsuppressed before suppressed, most severe first, then by place."""
    return sorted(
        findings,
        key=lambda f: (f.suppressed, -f.severity.rank, f.path or "\uffff", f.line or 0, f.rule),
    )


def revision_index(result: CheckResult) -> dict[str, MigrationFile]:
    return {rev.revision: rev for rev in result.revisions}


def approval_findings(result: CheckResult, role: str) -> list[Finding]:
    """The findings that need `role`'s approval; suppressed ones only when nothing else does."""
    needing = [f for f in result.findings if role in f.approval_roles]
    active = [f for f in needing if not f.suppressed]
    return active or needing
