"""The terminal report: verdict first, then the findings grouped by revision."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import datetime

from bot.analysis.migration_model import MigrationFile
from bot.analysis.model import Finding, Severity
from bot.report import sandbox_view
from bot.report.common import (
    evidence_line,
    judged_lines,
    location,
    ordered,
    plural,
    revision_index,
    rollback_commands,
    verdict,
)
from bot.report.plan import Backup, Contact, RollbackPlan, plan_for_result
from bot.result import CheckResult

_RESET = "\x1b[0m"
_BOLD = "\x1b[1m"
_DIM = "\x1b[2m"
_SEVERITY_COLOR = {
    Severity.ERROR: "\x1b[1;31m",
    Severity.WARNING: "\x1b[33m",
    Severity.NOTICE: "\x1b[36m",
}
# Control characters other than newline and tab: repository text must not be able to
# move the cursor, retitle the terminal or hide output with escape sequences.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SEVERITY_WIDTH = max(len(s.value) for s in Severity)


def clean(text: str) -> str:
    """Repository-derived text made safe to print on a terminal."""
    return _CONTROL.sub("\N{REPLACEMENT CHARACTER}", text)


def render_text(
    result: CheckResult,
    *,
    color: bool = False,
    contacts: Sequence[Contact] | None = None,
    backup: Backup = None,
    now: datetime | None = None,
) -> str:
    """The terminal report; `contacts` and `backup` complete the emergency procedure."""
    paint = _Painter(color)
    lines = [paint.verdict(verdict(result), result.exit_code)]
    lines += [f"{label}: {clean(text)}" for label, text in judged_lines(result)]
    lines.append("")
    for title, findings in _file_groups(result) if result.source == "sql" else _groups(result):
        lines.append(paint.bold(title))
        lines.extend(_finding_lines(findings, paint) if findings else ["  no findings"])
        lines.append("")
    if result.source == "sql":  # plain SQL: nothing ran, no Alembic rollback to plan
        lines.extend(_approval_lines(result))
        lines.append(f"SQL: {plural(len(result.dry_run.upgrade), 'statement')} read, never run")
        return "\n".join(lines) + "\n"
    plan = plan_for_result(result, contacts=contacts, backup=backup, now=now)
    lines.extend(_closing_lines(result, plan))
    return "\n".join(lines) + "\n"


def _file_groups(result: CheckResult) -> Iterator[tuple[str, list[Finding]]]:
    """(heading, findings) per SQL file (`migsafe lint`), in the order the files came."""
    by_path: dict[str, list[Finding]] = {}
    for statement in result.dry_run.upgrade:
        by_path.setdefault(statement.path or "", [])
    for finding in result.findings:
        by_path.setdefault(finding.path or "", []).append(finding)
    for path, findings in by_path.items():
        yield clean(path), findings


def _groups(result: CheckResult) -> Iterator[tuple[str, list[Finding]]]:
    """(heading, findings) per revision in upgrade order, then unknown revisions, then project."""
    by_revision: dict[str | None, list[Finding]] = {}
    for finding in result.findings:
        by_revision.setdefault(finding.revision, []).append(finding)
    known = revision_index(result)
    for rev in result.revisions:
        if rev.new or rev.revision in by_revision:
            yield _revision_heading(rev), by_revision.get(rev.revision, [])
    for revision_id, findings in by_revision.items():
        if revision_id is not None and revision_id not in known:
            yield f"revision {clean(revision_id)}", findings
    if None in by_revision:
        yield "project", by_revision[None]


def _revision_heading(rev: MigrationFile) -> str:
    message = f' "{clean(rev.message)}"' if rev.message else ""
    new = " (new)" if rev.new else ""
    return f"revision {clean(rev.revision)}{message} — {clean(rev.path)}{new}"


def _finding_lines(findings: list[Finding], paint: _Painter) -> Iterator[str]:
    for finding in ordered(findings):
        where = location(finding)
        severity = paint.severity(finding.severity, finding.severity.value.ljust(_SEVERITY_WIDTH))
        head = f"{clean(where)}  " if where else ""
        message_lines = clean(finding.message).splitlines() or [""]
        line = f"  {head}{severity}  {finding.rule}  {message_lines[0]}"
        if finding.suppressed:
            reason = clean(finding.suppression_reason or "no reason given")
            line = paint.dim(f"{line}  [suppressed: {reason}]")
        yield line
        yield from (f"    {more}" for more in message_lines[1:])
        for evidence in finding.evidence:
            yield f"      {evidence_line(evidence)}"
        if finding.approval_roles:
            yield f"      approval: {', '.join(clean(r) for r in finding.approval_roles)}"
        if finding.advice and not finding.suppressed:
            yield from (f"      {advice}".rstrip() for advice in clean(finding.advice).splitlines())


def _approval_lines(result: CheckResult) -> list[str]:
    if not result.approvals_required:
        return []
    return [f"Approvals required: {', '.join(clean(role) for role in result.approvals_required)}"]


def _closing_lines(result: CheckResult, plan: RollbackPlan) -> list[str]:
    lines = _approval_lines(result)
    lines.append(_dry_run_summary(result))
    if result.dry_run.protections:
        lines.append(f"  ran under: {', '.join(clean(p) for p in result.dry_run.protections)}")
    lines.extend(_sandbox_lines(result))
    lines.extend(_plan_lines(plan))
    lines.append(f"Rollback: {' ; '.join(rollback_commands(result))}")
    return lines


def _plan_lines(plan: RollbackPlan) -> list[str]:
    """The rollback plan and the emergency procedure; the rollback command closes the report."""
    lines = [f"Rollback plan ({plan.safety}): {clean(plan.summary)}"]
    for loss in plan.losses:
        place = f" at {clean(loss.place)}" if loss.place else ""
        lines.append(f"  {loss.rule}{place}: {clean(loss.message)}")
    lines.append(f"  backup: {clean(plan.backup)}")
    lines.append(f"If the migration fails in {clean(plan.environment)}:")
    for number, step in enumerate(plan.emergency, start=1):
        lines.append(f"  {number}. {step.title}: {clean(step.text)}")
        lines += [f"       {clean(command)}" for command in step.commands]
    return lines


def _sandbox_lines(result: CheckResult) -> list[str]:
    report = result.sandbox
    if report is None:
        return [f"Sandbox: {clean(sandbox_view.skipped_reason(result))}"]
    lines = [sandbox_view.heading(report)]
    lines += [f"  {clean(line)}" for line in sandbox_view.step_lines(report)]
    spans = sandbox_view.significant_spans(report)
    if spans:
        lines.append("  locks held (from the statement that took them until COMMIT):")
    for span in spans[: sandbox_view.LOCK_LIMIT]:
        source = sandbox_view.span_source(report, span.first_statement)
        statements = span.last_statement - span.first_statement + 1
        lines.append(
            f"    {clean(span.relation)}  {sandbox_view.mode_name(span.mode)}  "
            f"{span.held_s * 1000:.0f} ms over {plural(statements, 'statement')}  "
            f"from {clean(source)}"
        )
    if report.schema_diff:
        lines.append("  schema base → head:")
        lines += [f"    {clean(c)}" for c in report.schema_diff[: sandbox_view.DIFF_LIMIT]]
    if report.protections:
        lines.append(f"  ran under: {', '.join(clean(p) for p in report.protections)}")
    return lines


def _dry_run_summary(result: CheckResult) -> str:
    dry_run = result.dry_run
    if dry_run.error is not None:
        if dry_run.error_summary:
            summary = dry_run.error_summary
        else:  # a result not summarised by the dry-run (built by hand): its last line
            lines = [line for line in dry_run.error.splitlines() if line.strip()]
            summary = lines[-1].strip() if lines else "no error text"
        return f"Dry-run failed: {clean(summary)} (full error: --format json or markdown)"
    up = plural(len(dry_run.upgrade), "statement")
    return (
        f"Dry-run: {up} up, {len(dry_run.downgrade)} down"
        " (full SQL: --format markdown or --format json)"
    )


class _Painter:
    """ANSI colour when asked for; plain text otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def _wrap(self, code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if self.enabled else text

    def bold(self, text: str) -> str:
        return self._wrap(_BOLD, text)

    def dim(self, text: str) -> str:
        # Strip inner resets so the whole line stays dim.
        return self._wrap(_DIM, text.replace(_RESET, _RESET + _DIM)) if self.enabled else text

    def severity(self, severity: Severity, text: str) -> str:
        return self._wrap(_SEVERITY_COLOR[severity], text)

    def verdict(self, text: str, exit_code: int) -> str:
        return self._wrap("\x1b[1;31m" if exit_code else "\x1b[1;32m", text)
