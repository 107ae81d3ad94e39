"""The JSON report: a stable, documented interface (docs/json-output.md).

Key order is part of the interface; `output.schema.json` beside this file describes it.
Fields are only ever added, never renamed or removed, without a new major version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.analysis.migration_model import MigrationFile
from bot.analysis.model import Evidence, Finding, Severity, Statement
from bot.report import sandbox_view
from bot.report.common import suppressed_count
from bot.result import CheckResult

SCHEMA_PATH = Path(__file__).with_name("output.schema.json")

JsonObject = dict[str, Any]


def render_json(result: CheckResult) -> str:
    return json.dumps(to_document(result), indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def to_document(result: CheckResult) -> JsonObject:
    """The report as plain JSON data, keys in their documented order."""
    return {
        "migsafe_version": result.version,
        "environment": result.environment,
        "exit_code": result.exit_code,
        "summary": {
            "errors": result.count(Severity.ERROR),
            "warnings": result.count(Severity.WARNING),
            "notices": result.count(Severity.NOTICE),
            "suppressed": suppressed_count(result),
        },
        "base": list(result.base),
        "heads": list(result.heads),
        "revisions": [_revision(rev) for rev in result.revisions],
        "findings": [_finding(finding) for finding in result.findings],
        "approvals_required": list(result.approvals_required),
        "dry_run": _dry_run(result),
        "sandbox": sandbox_view.to_json(result),
        "rules": _rules(result),
        "judged": _judged(result),
    }


def _judged(result: CheckResult) -> JsonObject | None:
    """What the check judged and why (docs/json-output.md, `judged`)."""
    judged = result.judged
    if judged is None:
        return None
    policy, environment, revisions = judged.policy, judged.environment, judged.revisions
    return {
        "policy": {"path": policy.path, "git_ref": policy.git_ref, "text": policy.text},
        "environment": {
            "name": environment.name,
            "origin": environment.origin,
            "text": environment.text,
        },
        "revisions": {
            "origin": revisions.origin,
            "new": revisions.new,
            "existing": revisions.existing,
            "git_ref": revisions.git_ref,
            "commit": revisions.commit,
            "revision": revisions.revision,
            "text": revisions.text,
        },
    }


def _revision(rev: MigrationFile) -> JsonObject:
    return {
        "revision": rev.revision,
        "down_revision": _down_revision(rev.down_revisions),
        "path": rev.path,
        "new": rev.new,
        "message": rev.message,
    }


def _down_revision(down: tuple[str, ...]) -> str | list[str] | None:
    """As Alembic writes it: None for a root, a string, or a list for a merge."""
    if not down:
        return None
    return down[0] if len(down) == 1 else list(down)


def _finding(finding: Finding) -> JsonObject:
    return {
        "rule": finding.rule,
        "severity": finding.severity.value,
        "path": finding.path,
        "line": finding.line,
        "revision": finding.revision,
        "statement": finding.statement,
        "message": finding.message,
        "suppressed": finding.suppressed,
        "suppression_reason": finding.suppression_reason,
        "approval_roles": list(finding.approval_roles),
        "advice": finding.advice,
        "phase": finding.phase,
        "source": finding.source,
        "evidence": [
            {"rule": e.rule, "source": e.source, "message": e.message} for e in finding.evidence
        ],
    }


def finding_from_json(data: JsonObject) -> Finding:
    """A finding back from its JSON form (the service keeps reports as JSON)."""
    return Finding(
        rule=data["rule"],
        severity=Severity(data["severity"]),
        message=data["message"],
        path=data["path"],
        line=data["line"],
        revision=data["revision"],
        statement=data["statement"],
        phase=data["phase"],
        advice=data["advice"],
        suppressed=data["suppressed"],
        suppression_reason=data["suppression_reason"],
        approval_roles=list(data["approval_roles"]),
        source=data["source"],
        # Reports stored before `evidence` existed have none.
        evidence=[Evidence(e["rule"], e["source"], e["message"]) for e in data.get("evidence", [])],
    )


def _dry_run(result: CheckResult) -> JsonObject:
    dry_run = result.dry_run
    return {
        "upgrade_sql": dry_run.upgrade_sql,
        "downgrade_sql": dry_run.downgrade_sql,
        "error": dry_run.error,
        "protections": list(dry_run.protections),
        "statements": [_statement(s) for s in [*dry_run.upgrade, *dry_run.downgrade]],
        "error_summary": dry_run.error_summary,
    }


def _statement(statement: Statement) -> JsonObject:
    return {
        "phase": statement.phase,
        "index": statement.index,
        "sql": statement.sql,
        "revision": statement.revision,
        "path": statement.path,
        "line": statement.line,
    }


def _rules(result: CheckResult) -> JsonObject:
    """The catalog entries of the rules that have findings, by id."""
    reported = sorted({finding.rule for finding in result.findings})
    return {
        rule_id: {
            "family": info.family.value,
            "summary": info.summary,
            "explanation": info.explanation,
        }
        for rule_id in reported
        if (info := result.rules.get(rule_id)) is not None
    }
