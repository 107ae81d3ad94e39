"""The sandbox run in each report format: steps, the lock timeline, the schema diff.

Shared by text, markdown and JSON so that the three say the same thing.
"""

from __future__ import annotations

from typing import Any

from bot.analysis.sandbox_model import LockSpan, SandboxReport, TracedStatement
from bot.result import CheckResult

LOCK_LIMIT = 20  # lock spans listed in text and markdown (JSON has them all)
DIFF_LIMIT = 30  # schema diff lines listed in text and markdown
_MARK = {"passed": "✓", "failed": "✗", "skipped": "-"}
_MODE_NAMES = {
    "AccessExclusiveLock": "ACCESS EXCLUSIVE",
    "ExclusiveLock": "EXCLUSIVE",
    "ShareRowExclusiveLock": "SHARE ROW EXCLUSIVE",
    "ShareLock": "SHARE",
    "ShareUpdateExclusiveLock": "SHARE UPDATE EXCLUSIVE",
    "RowExclusiveLock": "ROW EXCLUSIVE",
    "RowShareLock": "ROW SHARE",
    "AccessShareLock": "ACCESS SHARE",
}


def mode_name(mode: str) -> str:
    return _MODE_NAMES.get(mode, mode)


def heading(report: SandboxReport) -> str:
    version = f"PostgreSQL {report.server_version}" if report.server_version else "PostgreSQL"
    return f"Sandbox run on {version} ({report.duration_s:.1f} s)"


def step_lines(report: SandboxReport) -> list[str]:
    lines = []
    for step in report.steps:
        detail = f": {first_line(step.detail)}" if step.detail else ""
        lines.append(f"{_MARK[step.outcome]} {step.name} ({step.duration_s * 1000:.0f} ms){detail}")
    return lines


def significant_spans(report: SandboxReport) -> list[LockSpan]:
    """The locks worth a reviewer's eye, strongest and longest first: the ones that block
    writes (SHARE and up) before row-level locks."""
    strong = [
        s
        for s in report.lock_spans
        if s.mode not in ("AccessShareLock", "RowShareLock") and _named_relation(s.relation)
    ]
    return sorted(strong, key=lambda s: (-_strength(s.mode), -s.held_s, s.relation))


def _named_relation(relation: str) -> bool:
    """Not a TOAST table, nor a relation gone by the time it was read (shown as its oid)."""
    return not relation.isdigit() and not relation.startswith("pg_toast.")


def span_source(report: SandboxReport, index: int) -> str:
    statement = report.trace[index] if 0 <= index < len(report.trace) else None
    if statement is None or statement.path is None:
        return f"statement {index + 1}"
    if statement.line is None:  # a line the parent could not vouch for (bot.analysis.origins)
        return statement.path
    return f"{statement.path}:{statement.line}"


def first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def skipped_reason(result: CheckResult) -> str:
    return result.sandbox_skipped or "not run"


def to_json(result: CheckResult) -> dict[str, Any]:
    report = result.sandbox
    if report is None:
        return {"ran": False, "skipped_reason": skipped_reason(result)}
    return {
        "ran": True,
        "skipped_reason": None,
        "server_version": report.server_version,
        "duration_s": round(report.duration_s, 3),
        "protections": list(report.protections),
        "steps": [
            {
                "name": step.name,
                "outcome": step.outcome,
                "duration_s": round(step.duration_s, 3),
                "detail": step.detail,
            }
            for step in report.steps
        ],
        "trace": [_traced(statement) for statement in report.trace],
        "locks": [
            {
                "relation": span.relation,
                "mode": span.mode,
                "first_statement": span.first_statement,
                "last_statement": span.last_statement,
                "held_s": round(span.held_s, 6),
            }
            for span in report.lock_spans
        ],
        "schema_diff": list(report.schema_diff),
        "rollback_diff": list(report.rollback_diff),
        "seeded": dict(report.seeded),
        "seed_failures": dict(report.seed_failures),
    }


def _traced(statement: TracedStatement) -> dict[str, Any]:
    return {
        "sql": statement.sql,
        "revision": statement.revision,
        "path": statement.path,
        "line": statement.line,
        "start_s": round(statement.start_s, 6),
        "duration_s": round(statement.duration_s, 6),
        "locks": [{"relation": rel, "mode": mode} for rel, mode in statement.locks],
        "rewritten": list(statement.rewritten),
        "lock_timeout": statement.lock_timeout,
        "statement_timeout": statement.statement_timeout,
        "error": statement.error,
    }


_STRENGTH = [
    "AccessShareLock",
    "RowShareLock",
    "RowExclusiveLock",
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
]


def _strength(mode: str) -> int:
    return _STRENGTH.index(mode) if mode in _STRENGTH else -1
