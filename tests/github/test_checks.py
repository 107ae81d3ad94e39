"""Check-run shaping: cut text, annotation batches, finding -> annotation, conclusion."""

from __future__ import annotations

import pytest

from bot.analysis.migration_model import DryRun
from bot.analysis.model import Finding, Severity
from bot.github.checks import (
    MAX_TEXT,
    Annotation,
    CheckAction,
    annotation_for,
    annotations_for,
    batches,
    conclusion_for,
    cut_text,
)
from bot.result import CheckResult


@pytest.mark.parametrize(
    ("length", "limit"),
    [(0, 100), (100, 100), (101, 100), (200_000, MAX_TEXT), (MAX_TEXT + 1, MAX_TEXT), (50, 10)],
)
def test_cut_text_never_exceeds_the_limit_and_says_when_it_cut(length: int, limit: int) -> None:
    text = "x" * length
    cut = cut_text(text, limit)
    assert len(cut) <= limit
    if length <= limit:
        assert cut == text
    else:
        assert "cut" in cut


def test_cut_text_keeps_the_start_and_counts_what_it_shows() -> None:
    cut = cut_text("abc" * 40_000)
    assert cut.startswith("abcabc")
    assert "of 120,000 characters" in cut
    assert len(cut) == MAX_TEXT or len(cut) == MAX_TEXT - 1


@pytest.mark.parametrize(
    ("count", "sizes"), [(0, []), (1, [1]), (50, [50]), (51, [50, 1]), (120, [50, 50, 20])]
)
def test_batches_of_fifty(count: int, sizes: list[int]) -> None:
    chunks = list(batches(list(range(count))))
    assert [len(chunk) for chunk in chunks] == sizes
    assert [item for chunk in chunks for item in chunk] == list(range(count))


def finding(severity: Severity, **fields: object) -> Finding:
    base: dict[str, object] = {
        "rule": "drop-column",
        "severity": severity,
        "message": "Dropping column orders.legacy_ref destroys its data.",
        "path": "migrations/versions/0003.py",
        "line": 14,
        "statement": "ALTER TABLE orders DROP COLUMN legacy_ref",
        "advice": "Stop reading the column first.",
    }
    base.update(fields)
    return Finding(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("severity", "level"),
    [(Severity.ERROR, "failure"), (Severity.WARNING, "warning"), (Severity.NOTICE, "notice")],
)
def test_annotation_level_follows_severity(severity: Severity, level: str) -> None:
    annotation = annotation_for(finding(severity))
    assert annotation is not None
    assert annotation.annotation_level == level
    assert (annotation.path, annotation.start_line, annotation.end_line) == (
        "migrations/versions/0003.py",
        14,
        14,
    )
    assert annotation.title == "migsafe drop-column"
    assert annotation.raw_details is not None
    assert "Stop reading" in annotation.raw_details
    assert "DROP COLUMN" in annotation.raw_details


@pytest.mark.parametrize("fields", [{"path": None}, {"line": None}, {"suppressed": True}], ids=str)
def test_no_annotation_without_a_place_or_when_suppressed(fields: dict[str, object]) -> None:
    assert annotation_for(finding(Severity.ERROR, **fields)) is None


def test_annotation_json_has_only_set_fields_and_line_at_least_one() -> None:
    annotation = annotation_for(finding(Severity.NOTICE, line=0, advice=None, statement=None))
    assert annotation is not None
    assert annotation.to_json() == {
        "path": "migrations/versions/0003.py",
        "start_line": 1,
        "end_line": 1,
        "annotation_level": "notice",
        "message": "Dropping column orders.legacy_ref destroys its data.",
        "title": "migsafe drop-column",
    }


def test_annotations_for_skips_unplaced_findings() -> None:
    found = annotations_for([finding(Severity.ERROR), finding(Severity.ERROR, path=None)])
    assert len(found) == 1 and isinstance(found[0], Annotation)


def result_with(findings: list[Finding]) -> CheckResult:
    return CheckResult(
        project=".",
        environment="ci",
        revisions=[],
        base=(),
        heads=(),
        findings=findings,
        dry_run=DryRun(),
        rules={},
    )


@pytest.mark.parametrize(
    ("severities", "suppressed", "conclusion"),
    [
        ([], False, "success"),
        ([Severity.ERROR], False, "failure"),
        ([Severity.ERROR, Severity.NOTICE], False, "failure"),
        ([Severity.ERROR], True, "success"),
        ([Severity.WARNING], False, "neutral"),
        ([Severity.NOTICE], False, "neutral"),
    ],
)
def test_conclusion(severities: list[Severity], suppressed: bool, conclusion: str) -> None:
    findings = [finding(severity, suppressed=suppressed) for severity in severities]
    assert conclusion_for(result_with(findings)) == conclusion


def test_check_action_refuses_labels_github_would_reject() -> None:
    CheckAction("Run sandbox", "Run the sandbox for this commit", "sandbox")
    with pytest.raises(ValueError, match="too long"):
        CheckAction("A label longer than twenty", "x", "y")
