"""The report page's view model: the stored report and gate (JSON) turned into what the
template shows, in words for a product owner first: the verdict in one sentence, the
checklist, the findings with their explanation, the SQL linked to GitHub. Pure: no I/O,
no HTML (the template renders, `bot.web.pages` serves).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.report.plan import RollbackPlan, rollback_plan
from bot.store.pages import RunRecord, backup_from_gate, contacts_from_gate
from bot.web.links import Link, Links
from bot.web.timeline import (
    LockBar,
    TraceRow,
    duration,
    lock_timeline,
    timeline_bounds,
    trace_rows,
)

TIMEOUT_RULES = (
    "missing-lock-timeout",
    "missing-statement-timeout",
    "lock-timeout-not-set",
    "statement-timeout-not-set",
)
# What a family of findings means, in words for someone who does not read SQL.
FAMILY_WORDS = {
    "destructive": "destroys or rewrites existing data",
    "timeout": "can wait on locks or run without a time limit",
    "locking": "locks tables the application uses",
    "compatibility": "breaks the application still running during the deploy",
    "security": "weakens row level security",
    "revision": "cannot be applied or rolled back cleanly",
    "meta": "could not be fully analysed",
}
SEVERITY_ORDER = {"error": 0, "warning": 1, "notice": 2}


@dataclass(frozen=True)
class CheckItem:
    name: str
    ok: bool | None  # None: not needed here, recommended only, or not evaluated yet
    detail: str

    @property
    def mark(self) -> str:
        return {True: "✓", False: "✗", None: "\u2013"}[self.ok]

    @property
    def css(self) -> str:
        return {True: "ok", False: "bad", None: "na"}[self.ok]


@dataclass(frozen=True)
class FindingView:
    rule: str
    severity: str
    message: str
    place: Link | None
    summary: str | None
    explanation: str | None
    advice: str | None
    suppressed: bool
    suppression_reason: str | None
    approval_roles: list[str]
    statement: str | None


@dataclass(frozen=True)
class StatementView:
    number: int
    sql: str
    place: Link | None
    revision: str | None


@dataclass
class RunView:
    run: RunRecord
    title: str
    tone: str  # ok | wait | fail
    sentence: str
    environment: str
    commit: Link
    pull: Link
    created: str
    gate: dict[str, Any] | None
    approvals_required: list[str]
    checklist: list[CheckItem]
    findings: list[FindingView]
    plan: RollbackPlan | None
    sandbox_ran: bool
    sandbox_skipped: str | None
    sandbox_heading: str
    steps: list[CheckItem]
    timeline: list[LockBar]
    timeline_total: str
    trace: list[TraceRow]
    schema_diff: list[str]
    rollback_diff: list[str]
    upgrade: list[StatementView]
    downgrade: list[StatementView]
    upgrade_text: str
    downgrade_text: str
    dry_run_error: str | None
    protections: list[str]
    dry_run_protections: list[str]
    revisions: list[dict[str, Any]] = field(default_factory=list)


def build_view(run: RunRecord, *, github_web: str, now: datetime) -> RunView:
    report, gate = run.report, run.gate
    links = Links(github_web, run.repo, run.head_sha)
    sandbox = report.get("sandbox") or {}
    dry_run = report.get("dry_run") or {}
    empty = not report
    tone, sentence = verdict(report, gate)
    statements = dry_run.get("statements") or []
    return RunView(
        run=run,
        title=f"{run.repo}#{run.number}",
        tone=tone,
        sentence=sentence,
        environment=str(report.get("environment") or (gate or {}).get("environment") or "—"),
        commit=Link(run.head_sha[:12], links.commit()),
        pull=Link(f"{run.repo}#{run.number}", links.pull(run.number)),
        created=run.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        gate=gate,
        approvals_required=[str(r) for r in report.get("approvals_required") or []],
        checklist=[] if empty else checklist(report, gate),
        findings=_findings(report, links),
        plan=None
        if empty
        else rollback_plan(
            report, contacts=contacts_from_gate(gate), backup=backup_from_gate(gate), now=now
        ),
        sandbox_ran=bool(sandbox.get("ran")),
        sandbox_skipped=sandbox.get("skipped_reason"),
        sandbox_heading=_sandbox_heading(sandbox),
        steps=[
            CheckItem(
                str(s.get("name")),
                {"passed": True, "failed": False}.get(str(s.get("outcome"))),
                _step_detail(s),
            )
            for s in sandbox.get("steps") or []
        ],
        timeline=lock_timeline(sandbox, links),
        timeline_total=duration(timeline_bounds(sandbox)[1]),
        trace=trace_rows(sandbox, links),
        schema_diff=[str(line) for line in sandbox.get("schema_diff") or []],
        rollback_diff=[str(line) for line in sandbox.get("rollback_diff") or []],
        upgrade=_statements(statements, "upgrade", links),
        downgrade=_statements(statements, "downgrade", links),
        upgrade_text=str(dry_run.get("upgrade_sql") or ""),
        downgrade_text=str(dry_run.get("downgrade_sql") or ""),
        dry_run_error=dry_run.get("error"),
        protections=[str(p) for p in sandbox.get("protections") or []],
        dry_run_protections=[str(p) for p in dry_run.get("protections") or []],
        revisions=[r for r in report.get("revisions") or [] if r.get("new")],
    )


def verdict(report: Mapping[str, Any], gate: Mapping[str, Any] | None) -> tuple[str, str]:
    """(tone, the verdict and why in one sentence)."""
    if not report:
        return "ok", "Nothing to review: this pull request changes no migration."
    errors = [
        f
        for f in report.get("findings") or []
        if f.get("severity") == "error" and not f.get("suppressed")
    ]
    approvals = _approval_clause(report, gate)
    if errors:
        families = [
            ((report.get("rules") or {}).get(f["rule"]) or {}).get("family", "meta") for f in errors
        ]
        words = list(dict.fromkeys(FAMILY_WORDS.get(family, family) for family in families))
        count = f"{len(errors)} error" + ("" if len(errors) == 1 else "s")
        sentence = f"Not safe to merge yet: this change {_and(words)} ({count} to fix first)"
        return "fail", sentence + (f"; {approvals}" if approvals else "") + "."
    if gate is not None and gate.get("conclusion") != "success":
        return "wait", f"No error found, but the merge is {_lower_first(gate['sentence'])}"
    if gate is None and report.get("approvals_required"):
        return "wait", f"No error found; {approvals}."
    done = f" {gate['sentence']}" if gate is not None else ""
    return "ok", f"Safe to merge: migsafe found nothing that blocks this change.{done}"


def _approval_clause(report: Mapping[str, Any], gate: Mapping[str, Any] | None) -> str:
    if gate is not None:
        missing = [r for r in gate.get("roles") or [] if r.get("missing")]
        if not missing:
            return ""
        return f"it also needs approval from {_and([str(r['role']) for r in missing])}"
    roles = [str(r) for r in report.get("approvals_required") or []]
    if not roles:
        return ""
    return f"it needs approval from {_and(roles)} (the approvals check has not run yet)"


def checklist(report: Mapping[str, Any], gate: Mapping[str, Any] | None) -> list[CheckItem]:
    """The environment's checklist: timeouts from the findings and the sandbox, the rest
    (documentation, ADR, maintenance window, backup) from the gate's procedure."""
    items = [_timeouts_item(report)]
    if gate is None:
        items.append(
            CheckItem(
                "Backup, maintenance window, ADR",
                None,
                "not evaluated yet: the approvals check runs after this analysis",
            )
        )
        return items
    for item in gate.get("procedure") or []:
        items.append(CheckItem(str(item.get("name")), item.get("ok"), str(item.get("detail"))))
    return items


def _timeouts_item(report: Mapping[str, Any]) -> CheckItem:
    missing = [f for f in report.get("findings") or [] if f.get("rule") in TIMEOUT_RULES]
    active = [f for f in missing if not f.get("suppressed")]
    if active:
        places = list(dict.fromkeys(_place_text(f) or str(f.get("rule")) for f in active))
        shown = ", ".join(places[:5]) + (f" and {len(places) - 5} more" if len(places) > 5 else "")
        blocking = any(f.get("severity") == "error" for f in active)
        detail = f"lock_timeout / statement_timeout not set before: {shown}"
        return CheckItem("Timeouts", False if blocking else None, detail)
    seen = _observed_timeouts(report.get("sandbox") or {})
    detail = "every lock-taking statement runs with lock_timeout and statement_timeout set"
    if seen:
        detail += f" (seen in the sandbox: {seen})"
    return CheckItem("Timeouts", True, detail)


def _observed_timeouts(sandbox: Mapping[str, Any]) -> str:
    pairs = {
        (s.get("lock_timeout"), s.get("statement_timeout")) for s in sandbox.get("trace") or []
    }
    if len(pairs) != 1:
        return ""
    lock, statement = next(iter(pairs))
    if lock is None or statement is None:
        return ""
    return f"lock_timeout {lock}, statement_timeout {statement}"


# -- findings and SQL -------------------------------------------------------------------------


def _findings(report: Mapping[str, Any], links: Links) -> list[FindingView]:
    rules = report.get("rules") or {}
    ordered = sorted(
        report.get("findings") or [],
        key=lambda f: (
            bool(f.get("suppressed")),
            SEVERITY_ORDER.get(str(f.get("severity")), 3),
            str(f.get("path") or "\uffff"),
            int(f.get("line") or 0),
        ),
    )
    views = []
    for f in ordered:
        rule = rules.get(f.get("rule")) or {}
        views.append(
            FindingView(
                rule=str(f.get("rule")),
                severity=str(f.get("severity")),
                message=str(f.get("message") or ""),
                place=links.place(f.get("path"), f.get("line")),
                summary=rule.get("summary"),
                explanation=rule.get("explanation"),
                advice=f.get("advice"),
                suppressed=bool(f.get("suppressed")),
                suppression_reason=f.get("suppression_reason"),
                approval_roles=[str(r) for r in f.get("approval_roles") or []],
                statement=f.get("statement"),
            )
        )
    return views


def _statements(
    statements: Sequence[Mapping[str, Any]], phase: str, links: Links
) -> list[StatementView]:
    return [
        StatementView(
            number=int(s.get("index", 0)) + 1,
            sql=str(s.get("sql") or ""),
            place=links.place(s.get("path"), s.get("line")),
            revision=s.get("revision"),
        )
        for s in statements
        if s.get("phase") == phase
    ]


# -- helpers ----------------------------------------------------------------------------------


def _sandbox_heading(sandbox: Mapping[str, Any]) -> str:
    if not sandbox.get("ran"):
        return "The sandbox did not run"
    version = sandbox.get("server_version") or ""
    on = f" on PostgreSQL {version}" if version else ""
    return f"Sandbox run{on} ({float(sandbox.get('duration_s') or 0.0):.1f} s)"


def _step_detail(step: Mapping[str, Any]) -> str:
    detail = str(step.get("detail") or "")
    lines = [line for line in detail.splitlines() if line.strip()]
    return lines[0] if lines else ""


def _place_text(finding: Mapping[str, Any]) -> str | None:
    path, line = finding.get("path"), finding.get("line")
    if not path:
        return None
    return f"{path}:{line}" if line else str(path)


def _and(items: Sequence[str]) -> str:
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text else text
