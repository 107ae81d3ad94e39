from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bot import __version__
from bot.analysis.model import Finding, Severity
from bot.report.sarif import FINGERPRINT_KEY, render_sarif, to_sarif
from bot.result import CheckResult

from . import CLEANUP, RULES, clean_result, failed_dry_run_result, sample_result

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
SARIF_SCHEMA = SCHEMAS / "sarif-schema-2.1.0.json"
SARIF_SCHEMA_SHA256 = "c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e"


def validator() -> jsonschema.Draft4Validator:
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())


def sarif(result: CheckResult) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(render_sarif(result))
    return loaded


def results(result: CheckResult) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = sarif(result)["runs"][0]["results"]
    return found


def test_the_vendored_schema_is_the_official_one_named_in_provenance() -> None:
    digest = hashlib.sha256(SARIF_SCHEMA.read_bytes()).hexdigest()
    assert digest == SARIF_SCHEMA_SHA256
    assert SARIF_SCHEMA_SHA256 in (SCHEMAS / "PROVENANCE.md").read_text(encoding="utf-8")
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    assert schema["id"].endswith("/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json")


@pytest.mark.parametrize("make", [sample_result, failed_dry_run_result, clean_result])
def test_output_validates_against_the_sarif_2_1_0_schema(make: Any) -> None:
    validator().validate(sarif(make()))


def test_a_result_without_its_required_message_fails_validation() -> None:
    log = sarif(sample_result())
    del log["runs"][0]["results"][0]["message"]
    with pytest.raises(jsonschema.ValidationError, match="'message' is a required property"):
        validator().validate(log)


def test_a_result_with_a_property_sarif_does_not_define_fails_validation() -> None:
    log = sarif(sample_result())
    log["runs"][0]["results"][0]["severity"] = "error"
    with pytest.raises(jsonschema.ValidationError, match="Additional properties"):
        validator().validate(log)


def test_a_run_without_its_tool_fails_validation() -> None:
    log = sarif(sample_result())
    del log["runs"][0]["tool"]
    with pytest.raises(jsonschema.ValidationError, match="'tool' is a required property"):
        validator().validate(log)


def test_header_and_tool_driver() -> None:
    log = sarif(sample_result())
    assert log["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json"
    assert log["version"] == "2.1.0"
    assert len(log["runs"]) == 1
    driver = log["runs"][0]["tool"]["driver"]
    assert driver["name"] == "migsafe"
    assert driver["version"] == __version__
    assert driver["informationUri"].startswith("https://")


def test_rules_describe_the_whole_catalog() -> None:
    rules = sarif(sample_result())["runs"][0]["tool"]["driver"]["rules"]
    assert [rule["id"] for rule in rules] == list(RULES)
    drop = rules[0]
    assert drop == {
        "id": "drop-column",
        "name": "DropColumn",
        "shortDescription": {"text": "a column is dropped"},
        "fullDescription": {"text": "Why drop-column matters, and the safe alternative."},
        "helpUri": "https://github.com/migsafe/migsafe/blob/main/docs/rules/drop-column.md",
        "help": {
            "text": "Why drop-column matters, and the safe alternative.",
            "markdown": (
                "**a column is dropped**\n\nWhy drop-column matters, and the safe alternative."
            ),
        },
        "defaultConfiguration": {"level": "error"},
        "properties": {"tags": ["migsafe", "destructive"]},
    }


def test_rule_index_points_at_the_rule_of_the_result() -> None:
    log = sarif(sample_result())
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    for result in log["runs"][0]["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]


def test_a_finding_of_a_rule_missing_from_the_catalog_still_gets_a_rule() -> None:
    finding = Finding("brand-new-rule", Severity.WARNING, "m", CLEANUP, 1)
    log = sarif(sample_result(findings=[finding]))
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    assert rules[log["runs"][0]["results"][0]["ruleIndex"]]["id"] == "brand-new-rule"
    validator().validate(log)


def test_severities_map_to_sarif_levels() -> None:
    levels = {r["ruleId"]: r["level"] for r in results(sample_result())}
    assert levels["drop-column"] == "error"
    assert levels["add-not-null-column"] == "warning"
    assert levels["multiple-heads"] == "note"


def test_message_carries_the_advice() -> None:
    drop = results(sample_result())[0]
    assert drop["message"]["text"] == (
        "Dropping column orders.legacy_ref destroys its data.\n\nSafe alternative:\n"
        "Stop reading the column in a release first, then drop it."
    )


def test_location_is_the_repository_relative_file_and_line() -> None:
    drop = results(sample_result())[0]
    assert drop["locations"] == [
        {"physicalLocation": {"artifactLocation": {"uri": CLEANUP}, "region": {"startLine": 14}}}
    ]


def test_a_finding_without_a_path_points_at_its_revision_file() -> None:
    missing_downgrade = results(sample_result())[4]
    assert missing_downgrade["ruleId"] == "missing-downgrade"
    assert missing_downgrade["locations"] == [
        {"physicalLocation": {"artifactLocation": {"uri": CLEANUP}}}
    ]


def test_a_project_finding_points_at_the_alembic_script_location() -> None:
    heads = results(sample_result())[5]
    location = {"physicalLocation": {"artifactLocation": {"uri": "migrations/"}}}
    assert heads["locations"] == [location]


def test_a_project_finding_without_a_script_location_has_no_location() -> None:
    heads = results(sample_result(script_location=None))[5]
    assert heads["locations"] == []


def test_paths_are_percent_encoded_uris() -> None:
    finding = Finding("drop-column", Severity.ERROR, "m", "versions/a b#1.py", 2)
    log = sarif(sample_result(findings=[finding]))
    uri = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert uri == {"uri": "versions/a%20b%231.py"}
    validator().validate(log)


def test_suppressed_findings_carry_an_in_source_suppression_with_the_reason() -> None:
    found = results(sample_result())
    assert found[2]["suppressions"] == [
        {"kind": "inSource", "justification": "orders has 12 rows in every environment"}
    ]
    assert "suppressions" not in found[0]


def test_a_suppression_without_a_reason_has_no_justification() -> None:
    finding = Finding("drop-column", Severity.ERROR, "m", CLEANUP, 3, suppressed=True)
    log = sarif(sample_result(findings=[finding]))
    assert log["runs"][0]["results"][0]["suppressions"] == [{"kind": "inSource"}]
    validator().validate(log)


def test_fingerprints_are_stable_when_code_moves_and_distinct_per_finding() -> None:
    before = results(sample_result())
    moved = sample_result()
    for finding in moved.findings:
        finding.line = (finding.line or 0) + 40
    after = results(moved)
    keys = [r["partialFingerprints"][FINGERPRINT_KEY] for r in before]
    assert keys == [r["partialFingerprints"][FINGERPRINT_KEY] for r in after]
    assert len(set(keys)) == len(keys)


def test_the_same_finding_twice_gets_distinct_fingerprints() -> None:
    finding = sample_result().findings[0]
    twice = [finding, copy.deepcopy(finding)]
    found = results(sample_result(findings=twice))
    keys = [r["partialFingerprints"][FINGERPRINT_KEY] for r in found]
    assert keys[1] == keys[0] + ":2"


def test_result_properties_keep_revision_phase_and_approval_roles() -> None:
    drop = results(sample_result())[0]
    assert drop["properties"] == {
        "source": "sql",
        "revision": "0003",
        "phase": "upgrade",
        "approvalRoles": ["backend-lead", "product-owner"],
        "statement": "ALTER TABLE orders DROP COLUMN legacy_ref",
    }


def test_run_records_the_environment_approvals_and_exit_code() -> None:
    run = to_sarif(sample_result())["runs"][0]
    assert run["properties"] == {
        "environment": "production",
        "approvalsRequired": ["backend-lead", "product-owner"],
    }
    assert run["invocations"] == [{"executionSuccessful": True, "exitCode": 1}]
