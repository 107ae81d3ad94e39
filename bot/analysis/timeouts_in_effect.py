"""The dry-run's missing-timeout findings beside what the sandbox saw on the connection.

Pure: findings and the sandbox's report in, findings out.
"""

from __future__ import annotations

from dataclasses import replace

from bot.analysis.durations import parse_duration_ms
from bot.analysis.model import Finding
from bot.analysis.rules.sandbox import LOCK_TIMEOUT_NOT_SET, STATEMENT_TIMEOUT_NOT_SET
from bot.analysis.rules.timeouts import MISSING_LOCK_TIMEOUT, MISSING_STATEMENT_TIMEOUT
from bot.analysis.sandbox_model import SandboxReport, TracedStatement

# The offline SQL's timeout rules and what the sandbox saw on the migration's connection.
_OBSERVED_AS = {
    MISSING_LOCK_TIMEOUT.id: LOCK_TIMEOUT_NOT_SET.id,
    MISSING_STATEMENT_TIMEOUT.id: STATEMENT_TIMEOUT_NOT_SET.id,
}


def reconcile_timeouts(
    findings: list[Finding],
    observed: list[Finding],
    report: SandboxReport,
    lock_timeout_max_ms: float,
    statement_timeout_max_ms: float,
) -> list[Finding]:
    """One finding per missing timeout. env.py may set timeouts on the connection, where the
    offline SQL never shows them: when the sandbox's trace reports a compliant one in effect
    on the revision's lock-taking statements, the dry-run's finding says so, but keeps its
    severity. The trace comes from the process that runs the repository's code, which could
    write anything into it: what the child reports may add findings, never lift one. When
    the trace saw them missing too, the dry-run's finding (with its advice) stands alone."""
    upgraded = any(s.name == "upgrade to head" and s.outcome == "passed" for s in report.steps)
    limits = {"lock_timeout": lock_timeout_max_ms, "statement_timeout": statement_timeout_max_ms}
    static_at = {(_OBSERVED_AS[f.rule], f.revision) for f in findings if f.rule in _OBSERVED_AS}
    kept = [f for f in observed if (f.rule, f.revision) not in static_at]
    for finding in findings:
        setting = _setting_of(finding.rule)
        if (
            finding.rule in _OBSERVED_AS
            and upgraded
            and _compliant_in_trace(report.trace, finding.revision, setting, limits[setting])
        ):
            finding = _seen_in_effect(finding)
        kept.append(finding)
    return kept


def _setting_of(rule: str) -> str:
    """missing-lock-timeout -> lock_timeout."""
    return rule.removeprefix("missing-").replace("-", "_")


def _compliant_in_trace(
    trace: list[TracedStatement], revision: str | None, setting: str, limit_ms: float
) -> bool:
    """Every statement of `revision` that took locks ran with `setting` set, within the limit
    (and there was at least one)."""
    locking = [s for s in trace if s.revision == revision and s.locks]
    return bool(locking) and all(
        0 < (parse_duration_ms(getattr(s, setting) or "0") or 0) <= limit_ms for s in locking
    )


def _seen_in_effect(finding: Finding) -> Finding:
    setting = _setting_of(finding.rule)
    return replace(
        finding,
        message=f"{finding.message} (the sandbox's trace reports a compliant {setting} in "
        "effect on the migration's connection, set by env.py; that report comes from the "
        "process running the repository's code and cannot lift the finding: set it in the "
        "migration's SQL, or have env.py emit it in offline mode too)",
    )
