from __future__ import annotations

from bot.analysis.model import Finding, Severity
from bot.report.text import render_text

from . import CLEANUP, clean_result, failed_dry_run_result, sample_result


def test_verdict_line_comes_first_with_counts_environment_and_exit_status() -> None:
    first = render_text(sample_result()).splitlines()[0]
    assert first == (
        "migsafe: 2 errors, 2 warnings, 1 notice, 1 suppressed — environment production — exit 1"
    )


def test_verdict_of_a_clean_check_says_no_findings_and_exit_0() -> None:
    first = render_text(clean_result()).splitlines()[0]
    assert first == "migsafe: no findings — environment production — exit 0"


def test_findings_are_grouped_under_their_revision_with_project_findings_last() -> None:
    lines = render_text(sample_result()).splitlines()
    revision = lines.index(f'revision 0003 "orders cleanup" — {CLEANUP} (new)')
    project = lines.index("project")
    assert revision < project
    drop = next(i for i, line in enumerate(lines) if "drop-column" in line)
    heads = next(i for i, line in enumerate(lines) if "multiple-heads" in line)
    assert revision < drop < project < heads


def test_a_finding_reads_location_severity_rule_message() -> None:
    text = render_text(sample_result())
    assert (
        f"  {CLEANUP}:14  error    drop-column  "
        "Dropping column orders.legacy_ref destroys its data." in text.splitlines()
    )


def test_a_finding_without_a_location_starts_with_its_severity() -> None:
    lines = render_text(sample_result()).splitlines()
    assert "  notice   multiple-heads  The history has two heads: 0003 and 0002b." in lines


def test_advice_is_indented_below_its_finding() -> None:
    lines = render_text(sample_result()).splitlines()
    finding = next(i for i, line in enumerate(lines) if "add-not-null-column" in line)
    assert lines[finding + 1] == "      Add the column as nullable, backfill it, then set NOT NULL:"
    assert "      UPDATE orders SET status = 'new' WHERE status IS NULL;" in lines[finding + 1 :]


def test_suppressed_finding_is_marked_with_its_reason() -> None:
    line = next(
        line
        for line in render_text(sample_result()).splitlines()
        if "create-index-non-concurrently" in line
    )
    assert line.endswith("[suppressed: orders has 12 rows in every environment]")


def test_approvals_dry_run_summary_and_rollback_close_the_report() -> None:
    lines = render_text(sample_result()).splitlines()
    assert "Approvals required: backend-lead, product-owner" in lines
    assert "Dry-run: 4 statements up, 2 down (full SQL: --format markdown or --format json)" in (
        lines
    )
    assert lines[-1] == "Rollback: alembic downgrade 0002"


def test_the_dry_run_sql_itself_is_not_in_the_text_report() -> None:
    assert "UPDATE alembic_version" not in render_text(sample_result())


def test_a_failed_dry_run_shows_the_exception_line_of_its_error() -> None:
    text = render_text(failed_dry_run_result())
    assert (
        "Dry-run failed: NameError: name 'sa' (at migrations/versions/0003_orders_cleanup.py:14,"
        " during upgrade) (full error: --format json or markdown)"
    ) in text.splitlines()
    assert "Will assume transactional DDL" not in text


def test_no_ansi_escapes_without_color() -> None:
    assert "\x1b" not in render_text(sample_result(), color=False)


def test_color_paints_severities_and_verdict() -> None:
    text = render_text(sample_result(), color=True)
    assert text.startswith("\x1b[1;31mmigsafe: 2 errors")
    assert "\x1b[1;31merror  \x1b[0m" in text
    assert "\x1b[33mwarning\x1b[0m" in text


def test_escape_sequences_from_the_repository_are_neutralised() -> None:
    hostile = Finding(
        rule="drop-column",
        severity=Severity.ERROR,
        message="drop\x1b]0;pwned\x07 \x1b[2Jgone",
        path="migrations/versions/\x1b[31mevil.py",
        line=1,
    )
    text = render_text(sample_result(findings=[hostile]), color=False)
    assert "\x1b" not in text
    assert "\x07" not in text
    assert "drop\ufffd]0;pwned\ufffd \ufffd[2Jgone" in text


def test_findings_of_a_revision_missing_from_the_history_get_their_own_group() -> None:
    stray = Finding(rule="rename-table", severity=Severity.WARNING, message="m", revision="9999")
    lines = render_text(sample_result(findings=[stray])).splitlines()
    assert "revision 9999" in lines
    assert "  warning  rename-table  m" in lines


def test_what_was_judged_and_why_follows_the_verdict() -> None:
    lines = render_text(sample_result()).splitlines()
    assert lines[1:4] == [
        "Policy: .github/migsafe.yml at main (merge-base 3f2c1a0)",
        "Environment: production — branches: main → production in .github/migsafe.yml",
        "Revisions: 1 new since main (merge-base 3f2c1a0); 2 existing",
    ]
