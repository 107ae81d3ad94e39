"""One finding per operation: the sandbox's observations join the finding they confirm."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.analysis.evidence import one_per_operation
from bot.analysis.model import Evidence, Finding, Severity
from bot.policy.approvals import evaluate_gate
from bot.policy.config import parse_policy

PATH = "migrations/versions/0002_amount.py"
ALTER = "ALTER TABLE accounts ALTER COLUMN amount TYPE BIGINT"


def sql(rule: str, severity: Severity = Severity.ERROR, line: int = 15, **more: object) -> Finding:
    more.setdefault("statement", ALTER)
    return Finding(rule, severity, f"{rule} message", PATH, line, "0002", phase="upgrade", **more)  # type: ignore[arg-type]


def seen(rule: str, severity: Severity = Severity.ERROR, line: int = 15, **more: object) -> Finding:
    return Finding(
        rule,
        severity,
        f"{rule} seen",
        PATH,
        line,
        "0002",
        phase="upgrade",
        source="sandbox",
        **{"statement": ALTER.lower(), **more},  # type: ignore[arg-type]
    )


def test_a_rewrite_the_sql_rule_predicted_joins_its_finding() -> None:
    alter = sql("alter-column-type", approval_roles=["backend-lead"])
    kept = one_per_operation(
        [
            alter,
            seen("table-rewrite", approval_roles=["dba"]),
            seen("access-exclusive-lock", Severity.WARNING),
        ]
    )
    assert kept == [alter]
    assert alter.evidence == [
        Evidence("table-rewrite", "sandbox", "table-rewrite seen"),
        Evidence("access-exclusive-lock", "sandbox", "access-exclusive-lock seen"),
    ]
    assert alter.approval_roles == ["backend-lead", "dba"]
    assert alter.rules == ("alter-column-type", "table-rewrite", "access-exclusive-lock")


def test_an_observation_more_severe_than_the_prediction_stays_its_own_finding() -> None:
    """Folding must never lower what blocks the merge."""
    notice = sql("prefer-timestamptz", Severity.NOTICE)
    rewrite = seen("table-rewrite", Severity.ERROR)
    assert one_per_operation([notice, rewrite]) == [notice, rewrite]
    assert notice.evidence == []


def test_observations_elsewhere_or_without_a_line_stay() -> None:
    alter = sql("alter-column-type")
    other_line = seen("table-rewrite", line=16)
    no_line = seen("access-exclusive-lock", Severity.WARNING, line=None)  # type: ignore[arg-type]
    assert one_per_operation([alter, other_line, no_line]) == [alter, other_line, no_line]


def test_a_suppressed_prediction_does_not_hide_an_unsuppressed_observation() -> None:
    alter = sql("alter-column-type", suppressed=True, suppression_reason="checked")
    rewrite = seen("table-rewrite")
    assert one_per_operation([alter, rewrite]) == [alter, rewrite]


def test_the_most_severe_finding_of_the_operation_receives_the_evidence() -> None:
    notice = sql("prefer-timestamptz", Severity.NOTICE)
    error = sql("alter-column-type", Severity.ERROR)
    lock = seen("access-exclusive-lock", Severity.WARNING)
    assert one_per_operation([notice, error, lock]) == [notice, error]
    assert [e.rule for e in error.evidence] == ["access-exclusive-lock"]


def test_a_window_asked_for_a_folded_rule_is_still_asked() -> None:
    """The gate judges every rule folded into a finding (`Finding.rules`)."""
    policy = parse_policy(
        "maintenance_window:\n  required_for: [table-rewrite]\n", ".github/migsafe.yml"
    )
    alter = sql("alter-column-type")
    folded = one_per_operation([alter, seen("table-rewrite")])
    verdict = evaluate_gate(
        reviews=[],
        author="dora",
        memberships={},
        fingerprints={},
        current_fingerprint="fp",
        findings=folded,
        policy=policy,
        environment="production",
        changes_migrations=True,
        labels=[],
        now=datetime(2026, 12, 7, tzinfo=UTC),
    )
    window = next(item for item in verdict.procedure if item.name == "Maintenance window")
    assert window.ok is False


def test_an_observation_about_another_table_on_the_same_line_stays_its_own() -> None:
    """A line can emit several statements (op.execute of a script, a batch's with)."""
    timeout = sql("missing-lock-timeout", statement="ALTER TABLE a ADD COLUMN n int")
    rewrite = seen("table-rewrite", statement="ALTER TABLE b SET TABLESPACE slow")
    assert one_per_operation([timeout, rewrite]) == [timeout, rewrite]
    assert timeout.evidence == []
