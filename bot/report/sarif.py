"""The SARIF 2.1.0 report, for GitHub code scanning (`github/codeql-action/upload-sarif`).

Locations are repository-relative URIs. Each result carries a partial fingerprint built
from what identifies the finding but not from its line, so that code scanning keeps one
alert per finding across pushes that move the code around.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import quote

from bot import HOME_URL
from bot.analysis.model import Finding, RuleInfo, Severity
from bot.analysis.rule import doc_url
from bot.report.common import evidence_line, revision_index
from bot.result import CheckResult

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
INFORMATION_URI = HOME_URL
FINGERPRINT_KEY = "migsafeFindingHash/v1"
LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.NOTICE: "note"}

JsonObject = dict[str, Any]


def render_sarif(result: CheckResult) -> str:
    return json.dumps(to_sarif(result), indent=2, ensure_ascii=False) + "\n"


def to_sarif(result: CheckResult) -> JsonObject:
    rule_ids = _rule_ids(result)
    rule_index = {rule_id: index for index, rule_id in enumerate(rule_ids)}
    fingerprints = _fingerprints(result.findings)
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "migsafe",
                        "version": result.version,
                        "semanticVersion": result.version,
                        "informationUri": INFORMATION_URI,
                        "rules": [
                            _rule(rule_id, result.rules.get(rule_id)) for rule_id in rule_ids
                        ],
                    }
                },
                "invocations": [
                    {"executionSuccessful": True, "exitCode": result.exit_code},
                ],
                "results": [
                    _result(f, rule_index[f.rule], fingerprints[i], result)
                    for i, f in enumerate(result.findings)
                ],
                "properties": {
                    "environment": result.environment,
                    "approvalsRequired": list(result.approvals_required),
                },
            }
        ],
    }


def _rule_ids(result: CheckResult) -> list[str]:
    """The whole catalog (so code scanning knows every rule), then any rule it lacks."""
    ids = list(result.rules)
    ids.extend(sorted({f.rule for f in result.findings} - set(result.rules)))
    return ids


def _rule(rule_id: str, info: RuleInfo | None) -> JsonObject:
    if info is None:  # a finding of a rule missing from the catalog: describe it by id
        return {"id": rule_id, "shortDescription": {"text": rule_id}}
    return {
        "id": info.id,
        "name": "".join(part.capitalize() for part in info.id.split("-")),
        "shortDescription": {"text": info.summary},
        "fullDescription": {"text": info.explanation},
        "helpUri": doc_url(info.id),
        "help": {
            "text": info.explanation,
            "markdown": f"**{info.summary}**\n\n{info.explanation}",
        },
        "defaultConfiguration": {"level": LEVELS[info.default_severity]},
        "properties": {"tags": ["migsafe", info.family.value]},
    }


def _result(
    finding: Finding, rule_index: int, finding_hash: str, result: CheckResult
) -> JsonObject:
    text = finding.message
    if finding.evidence:
        text += "\n" + "\n".join(evidence_line(e) for e in finding.evidence)
    if finding.advice:
        text += f"\n\nSafe alternative:\n{finding.advice}"
    sarif: JsonObject = {
        "ruleId": finding.rule,
        "ruleIndex": rule_index,
        "level": LEVELS[finding.severity],
        "message": {"text": text},
        "locations": _locations(finding, result),
        "partialFingerprints": {FINGERPRINT_KEY: finding_hash},
    }
    if finding.suppressed:
        suppression: JsonObject = {"kind": "inSource"}
        if finding.suppression_reason:
            suppression["justification"] = finding.suppression_reason
        sarif["suppressions"] = [suppression]
    sarif["properties"] = _result_properties(finding)
    return sarif


def _locations(finding: Finding, result: CheckResult) -> list[JsonObject]:
    """Where the finding is; without a path, the revision's file, else the script location."""
    path = finding.path
    if path is None and finding.revision is not None:
        rev = revision_index(result).get(finding.revision)
        path = rev.path if rev is not None else None
    if path is None and result.script_location:
        path = result.script_location.rstrip("/") + "/"
    if path is None:
        return []
    # Code scanning maps a uri from the repository root: `migsafe check backend` must say
    # backend/migrations/..., not migrations/...
    uri = result.folder_in_repository + path
    physical: JsonObject = {"artifactLocation": {"uri": quote(uri, safe="/")}}
    if finding.line is not None and finding.path is not None:
        physical["region"] = {"startLine": max(finding.line, 1)}
    return [{"physicalLocation": physical}]


def _fingerprints(findings: list[Finding]) -> list[str]:
    """One per finding; the same finding twice in a run gets `:2`, `:3`… (as code scanning's
    own line hashes count occurrences)."""
    seen: dict[str, int] = {}
    hashes = []
    for finding in findings:
        base = fingerprint(finding)
        seen[base] = seen.get(base, 0) + 1
        hashes.append(base if seen[base] == 1 else f"{base}:{seen[base]}")
    return hashes


def fingerprint(finding: Finding) -> str:
    """A stable identity: rule, file, revision, phase and the SQL (or message), not the line."""
    identity = [
        finding.rule,
        finding.path or "",
        finding.revision or "",
        finding.phase or "",
        " ".join((finding.statement or finding.message).split()),
    ]
    return hashlib.sha256("\x1f".join(identity).encode("utf-8")).hexdigest()[:32]


def _result_properties(finding: Finding) -> JsonObject:
    properties: JsonObject = {"source": finding.source}
    if finding.revision is not None:
        properties["revision"] = finding.revision
    if finding.phase is not None:
        properties["phase"] = finding.phase
    if finding.approval_roles:
        properties["approvalRoles"] = list(finding.approval_roles)
    if finding.statement is not None:
        properties["statement"] = finding.statement
    return properties
