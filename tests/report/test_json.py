from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bot import __version__
from bot.analysis.migration_model import MigrationFile
from bot.report.json_report import SCHEMA_PATH, render_json
from bot.result import CheckResult

from . import CLEANUP, clean_result, failed_dry_run_result, sample_result

DOCS = Path(__file__).resolve().parents[2] / "docs" / "json-output.md"
TOP_LEVEL_KEYS = [
    "migsafe_version",
    "environment",
    "exit_code",
    "summary",
    "base",
    "heads",
    "revisions",
    "findings",
    "approvals_required",
    "dry_run",
    "sandbox",
    "rules",
    "judged",
]
FINDING_KEYS = [
    "rule",
    "severity",
    "path",
    "line",
    "revision",
    "statement",
    "message",
    "suppressed",
    "suppression_reason",
    "approval_roles",
    "advice",
    "phase",
    "source",
    "evidence",
]


def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def document(result: CheckResult) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(render_json(result))
    return loaded


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    assert schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema())


@pytest.mark.parametrize("make", [sample_result, failed_dry_run_result, clean_result])
def test_output_validates_against_the_published_schema(make: Any) -> None:
    validator().validate(document(make()))


def test_the_schema_rejects_a_finding_without_a_documented_field() -> None:
    doc = document(sample_result())
    del doc["findings"][0]["approval_roles"]
    with pytest.raises(jsonschema.ValidationError, match="approval_roles"):
        validator().validate(doc)


def test_the_schema_rejects_undocumented_fields() -> None:
    doc = document(sample_result())
    doc["dry_run"]["statements"][0]["extra"] = 1
    with pytest.raises(jsonschema.ValidationError, match="extra"):
        validator().validate(doc)


def test_keys_come_in_their_documented_order_with_indent_2() -> None:
    text = render_json(sample_result())
    doc = json.loads(text)
    assert list(doc) == TOP_LEVEL_KEYS
    assert list(doc["findings"][0]) == FINDING_KEYS
    assert list(doc["summary"]) == ["errors", "warnings", "notices", "suppressed"]
    assert list(doc["dry_run"]) == [
        "upgrade_sql",
        "downgrade_sql",
        "error",
        "protections",
        "statements",
        "error_summary",
    ]
    assert text.startswith('{\n  "migsafe_version": ')


def test_top_level_values() -> None:
    doc = document(sample_result())
    assert doc["migsafe_version"] == __version__
    assert doc["environment"] == "production"
    assert doc["exit_code"] == 1
    assert doc["summary"] == {"errors": 2, "warnings": 2, "notices": 1, "suppressed": 1}
    assert doc["base"] == ["0002"]
    assert doc["heads"] == ["0003"]
    assert doc["approvals_required"] == ["backend-lead", "product-owner"]


def test_down_revision_is_null_a_string_or_a_list_for_merges() -> None:
    merge = MigrationFile(f"{CLEANUP}x", "0004", ("0003", "0002b"), new=True)
    result = sample_result()
    result.revisions.append(merge)
    revisions = document(result)["revisions"]
    assert [r["down_revision"] for r in revisions] == [None, "0001", "0002", ["0003", "0002b"]]
    assert revisions[2] == {
        "revision": "0003",
        "down_revision": "0002",
        "path": CLEANUP,
        "new": True,
        "message": "orders cleanup",
    }


def test_findings_carry_location_suppression_approvals_and_nulls() -> None:
    findings = document(sample_result())["findings"]
    drop = findings[0]
    assert drop["rule"] == "drop-column"
    assert (drop["path"], drop["line"], drop["revision"]) == (CLEANUP, 14, "0003")
    assert drop["statement"] == "ALTER TABLE orders DROP COLUMN legacy_ref"
    assert drop["approval_roles"] == ["backend-lead", "product-owner"]
    assert (drop["phase"], drop["source"]) == ("upgrade", "sql")
    suppressed = findings[2]
    assert suppressed["suppressed"] is True
    assert suppressed["suppression_reason"] == "orders has 12 rows in every environment"
    project = findings[5]
    assert (project["path"], project["line"], project["revision"], project["phase"]) == (
        None,
        None,
        None,
        None,
    )


def test_dry_run_carries_the_full_sql_and_every_statement_with_its_origin() -> None:
    result = sample_result()
    dry_run = document(result)["dry_run"]
    assert dry_run["upgrade_sql"] == result.dry_run.upgrade_sql
    assert dry_run["downgrade_sql"] == result.dry_run.downgrade_sql
    assert dry_run["error"] is None
    assert dry_run["protections"] == ["no network (unshare -n)", "time limit 60 s"]
    assert [(s["phase"], s["index"]) for s in dry_run["statements"]] == [
        ("upgrade", 0),
        ("upgrade", 1),
        ("upgrade", 2),
        ("upgrade", 3),
        ("downgrade", 0),
        ("downgrade", 1),
    ]
    assert dry_run["statements"][1] == {
        "phase": "upgrade",
        "index": 1,
        "sql": "ALTER TABLE orders DROP COLUMN legacy_ref",
        "revision": "0003",
        "path": CLEANUP,
        "line": 14,
    }


def test_a_failed_dry_run_has_its_error_and_no_statements() -> None:
    doc = document(failed_dry_run_result())
    assert doc["dry_run"]["error"].startswith("Traceback")
    assert doc["dry_run"]["statements"] == []


def test_rules_lists_only_the_rules_that_have_findings() -> None:
    rules = document(sample_result())["rules"]
    assert list(rules) == sorted(
        [
            "add-not-null-column",
            "create-index-non-concurrently",
            "drop-column",
            "missing-downgrade",
            "missing-lock-timeout",
            "multiple-heads",
        ]
    )
    assert rules["drop-column"] == {
        "family": "destructive",
        "summary": "a column is dropped",
        "explanation": "Why drop-column matters, and the safe alternative.",
    }
    assert document(clean_result())["rules"] == {}


def test_non_ascii_text_is_kept_as_is() -> None:
    result = sample_result()
    result.findings[0].message = "Spalte „legacy_ref“ wird gelöscht"
    assert "Spalte „legacy_ref“ wird gelöscht" in render_json(result)


def schema_field_names(node: Any) -> set[str]:
    names: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                names.update(value)
            names |= schema_field_names(value)
    elif isinstance(node, list):
        for item in node:
            names |= schema_field_names(item)
    return names


def test_the_reference_documents_every_field_of_the_schema() -> None:
    documented = set(re.findall(r"`([a-z_]+)`", DOCS.read_text(encoding="utf-8")))
    missing = schema_field_names(schema()) - documented
    assert not missing, f"fields missing from {DOCS.name}: {sorted(missing)}"


def sandboxed_result():  # type: ignore[no-untyped-def]
    from bot.analysis.sandbox_model import LockSpan, SandboxReport, Step, TracedStatement

    result = sample_result()
    alter = TracedStatement(
        sql="ALTER TABLE orders DROP COLUMN legacy_ref",
        start_s=0.01,
        duration_s=0.002,
        path="migrations/versions/0002_cleanup.py",
        line=21,
        revision="0002",
        locks=[("orders", "AccessExclusiveLock")],
        lock_timeout="0",
        statement_timeout="0",
    )
    result.sandbox = SandboxReport(
        server_version="15.18",
        steps=[Step("upgrade to head", "passed", 0.05), Step("upgrade again", "skipped")],
        trace=[alter],
        lock_spans=[LockSpan("orders", "AccessExclusiveLock", 0, 0, 0.01, 0.03)],
        schema_diff=["column public.orders.legacy_ref removed"],
        seeded={"public.orders": 3},
        protections=["network: none"],
        duration_s=0.4,
    )
    return result


def test_sandbox_section_validates_and_carries_the_trace() -> None:
    doc = document(sandboxed_result())
    validator().validate(doc)
    sandbox = doc["sandbox"]
    assert sandbox["ran"] is True and sandbox["server_version"] == "15.18"
    assert sandbox["trace"][0]["locks"] == [{"relation": "orders", "mode": "AccessExclusiveLock"}]
    assert sandbox["locks"][0]["held_s"] == 0.02
    assert [s["outcome"] for s in sandbox["steps"]] == ["passed", "skipped"]


def test_sandbox_not_run_says_why() -> None:
    result = sample_result()
    result.sandbox_skipped = "not requested (--no-sandbox)"
    doc = document(result)
    validator().validate(doc)
    assert doc["sandbox"] == {"ran": False, "skipped_reason": "not requested (--no-sandbox)"}


def test_findings_round_trip_through_json() -> None:
    from bot.report.json_report import finding_from_json

    result = sample_result()
    doc = document(result)
    assert [finding_from_json(f) for f in doc["findings"]] == result.findings


def test_judged_says_which_policy_environment_and_revisions_and_why() -> None:
    doc = document(sample_result())
    assert doc["judged"] == {
        "policy": {
            "path": ".github/migsafe.yml",
            "git_ref": "main",
            "text": ".github/migsafe.yml at main (merge-base 3f2c1a0)",
        },
        "environment": {
            "name": "production",
            "origin": "branches",
            "text": "branches: main → production in .github/migsafe.yml",
        },
        "revisions": {
            "origin": "merge-base",
            "new": 1,
            "existing": 2,
            "git_ref": "main",
            "commit": "3f2c1a0" + "0" * 33,
            "revision": None,
            "text": "1 new since main (merge-base 3f2c1a0); 2 existing",
        },
    }
    unjudged = document(sample_result(judged=None))
    validator().validate(unjudged)
    assert unjudged["judged"] is None
