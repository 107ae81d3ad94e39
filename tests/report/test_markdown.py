from __future__ import annotations

import re

import pytest

from bot.analysis.migration_model import DryRun
from bot.analysis.model import Finding, Severity, Statement
from bot.report.markdown import MAX_CHARS, render_markdown
from bot.result import CheckResult

from . import CLEANUP, clean_result, failed_dry_run_result, sample_result

LINK_BASE = "https://github.com/o/r/blob/0123abc/"
RULE_PAGES = "https://github.com/migsafe/migsafe/blob/main/docs/rules/"


def table_rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("| ") and "---" not in line]


def cells(row: str) -> list[str]:
    """Split a table row the way GitHub does: on pipes not escaped with a backslash."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]]


def test_starts_with_the_verdict_line() -> None:
    first = render_markdown(sample_result()).splitlines()[0]
    assert first == (
        "**migsafe: 2 errors, 2 warnings, 1 notice, 1 suppressed — environment production"
        " — exit 1**"
    )


def test_what_was_judged_and_why_follows_the_verdict() -> None:
    lines = render_markdown(sample_result()).splitlines()
    assert lines[2:5] == [
        "Policy: .github/migsafe.yml at main (merge-base 3f2c1a0)  ",
        "Environment: production — branches: main → production in .github/migsafe.yml  ",
        "Revisions: 1 new since main (merge-base 3f2c1a0); 2 existing",
    ]


def test_table_has_a_row_per_finding_most_severe_first_suppressed_last() -> None:
    rows = table_rows(render_markdown(sample_result()))
    assert rows[0] == "| Severity | Rule | Location | Message |"
    body = [cells(row) for row in rows[1:]]
    assert len(body) == 6
    assert [row[0] for row in body] == [
        "**error**",
        "**error**",
        "**warning**",
        "**warning**",
        "**notice**",
        "warning (suppressed)",
    ]
    drop_column_page = f"{RULE_PAGES}drop-column.md"
    assert body[1][:3] == ["**error**", f"[`drop-column`]({drop_column_page})", f"`{CLEANUP}:14`"]
    assert body[-1][3].endswith("<br>_Suppressed: orders has 12 rows in every environment_")


def test_locations_link_to_the_file_and_line_when_a_link_base_is_given() -> None:
    markdown = render_markdown(sample_result(), link_base=LINK_BASE)
    assert f"[`{CLEANUP}:14`]({LINK_BASE}{CLEANUP}#L14)" in markdown


def test_locations_are_plain_code_without_a_link_base() -> None:
    markdown = render_markdown(sample_result())
    links = re.findall(r"\]\(([^)]*)\)", markdown)
    assert links and all(link.startswith(RULE_PAGES) for link in links)  # the rules' pages only
    assert f"`{CLEANUP}:14`" in markdown


def test_link_paths_are_percent_encoded() -> None:
    finding = Finding("drop-column", Severity.ERROR, "m", path="v/a b(1).py", line=3)
    markdown = render_markdown(sample_result(findings=[finding]), link_base=LINK_BASE)
    assert f"[`v/a b(1).py:3`]({LINK_BASE}v/a%20b%281%29.py#L3)" in markdown


def test_pipes_newlines_and_html_in_table_cells_are_escaped() -> None:
    hostile = Finding(
        rule="drop-column",
        severity=Severity.ERROR,
        message="a | b\nnext line <script>alert(1)</script> and `code | span`",
        path="versions/x|y.py",
        line=2,
        suppressed=True,
        suppression_reason="why | not\n<b>",
    )
    rows = table_rows(render_markdown(sample_result(findings=[hostile])))
    assert len(rows) == 2  # the newline did not start a new row
    row = cells(rows[1])
    assert len(row) == 4  # no pipe split a cell
    assert row[2] == "`versions/x\\|y.py:2`"
    assert "&lt;script&gt;" in row[3]
    assert "<script>" not in row[3]
    assert "a \\| b<br>next line" in row[3]
    assert "`code \\| span`" in row[3]
    assert "why \\| not<br>&lt;b&gt;" in row[3]


def test_required_approvals_name_roles_and_the_findings_that_need_them() -> None:
    markdown = render_markdown(sample_result())
    section = markdown.split("### Approvals required", 1)[1].split("###", 1)[0]
    assert f"- **backend-lead** — for `drop-column` at `{CLEANUP}:14`" in section
    assert f"- **product-owner** — for `drop-column` at `{CLEANUP}:14`" in section


def test_no_approvals_section_when_none_are_required() -> None:
    assert "Approvals required" not in render_markdown(clean_result())


def test_sql_advice_is_fenced_and_prose_advice_is_not() -> None:
    markdown = render_markdown(sample_result())
    advice = markdown.split("### Safe patterns", 1)[1].split("### Rollback", 1)[0]
    assert "```sql\nSET lock_timeout = '30s';\n```" in advice
    assert (
        "Add the column as nullable, backfill it, then set NOT NULL:\n\n```sql\n"
        "ALTER TABLE orders ADD COLUMN status VARCHAR(20) NULL;\n" in advice
    )
    assert "\n\nRun the backfill in batches on large tables." in advice
    assert "Stop reading the column in a release first, then drop it." in advice
    assert "```sql\nStop reading" not in advice


def test_suppressed_findings_get_no_advice_section() -> None:
    finding = Finding("drop-column", Severity.ERROR, "m", advice="DROP it", suppressed=True)
    assert "### Safe patterns" not in render_markdown(sample_result(findings=[finding]))


def test_rollback_command_goes_back_to_the_base_revision() -> None:
    assert "### Rollback\n\n```sh\nalembic downgrade 0002\n```" in render_markdown(sample_result())


def test_rollback_of_a_change_from_the_start_goes_to_base() -> None:
    assert "```sh\nalembic downgrade base\n```" in render_markdown(clean_result())


def test_rollback_warns_when_the_downgrade_is_not_a_way_back() -> None:
    markdown = render_markdown(sample_result())
    assert "The downgrade is not a safe way back (`missing-downgrade` in `0003`)" in markdown


def test_upgrade_and_downgrade_sql_are_in_details_blocks_annotated_with_their_origin() -> None:
    markdown = render_markdown(sample_result())
    upgrade = markdown.split("<details><summary>Upgrade SQL (4 statements)</summary>", 1)[1]
    upgrade = upgrade.split("</details>", 1)[0]
    assert f"-- {CLEANUP}:14 (0003)\nALTER TABLE orders DROP COLUMN legacy_ref;" in upgrade
    assert "-- (0003)\nUPDATE alembic_version SET version_num='0003';" in upgrade
    downgrade = markdown.split("<details><summary>Downgrade SQL (2 statements)</summary>", 1)[1]
    assert f"-- {CLEANUP}:30 (0003)\nDROP INDEX ix_orders_status;" in downgrade


def test_hostile_sql_cannot_close_its_fence_or_the_details_block() -> None:
    evil = Statement(
        "SELECT '```\n</details><script>x</script>'", "upgrade", 0, "0003", "a`b.py", 1
    )
    markdown = render_markdown(sample_result(dry_run=DryRun(upgrade=[evil])))
    block = markdown.split("<summary>Upgrade SQL (1 statement)</summary>\n\n", 1)[1]
    fence = re.match(r"`{3,}", block)
    assert fence is not None and len(fence.group(0)) > 3
    body, after = block[len(fence.group(0)) :].split("\n" + fence.group(0) + "\n", 1)
    assert "</details><script>" in body
    assert after.startswith("\n</details>")


def test_details_summary_is_html_escaped() -> None:
    markdown = render_markdown(sample_result(dry_run=DryRun(upgrade_sql="SELECT 1;")))
    assert "<details><summary>Upgrade SQL</summary>\n\n```sql\nSELECT 1;\n```" in markdown


def test_a_failed_dry_run_shows_its_error_text() -> None:
    markdown = render_markdown(failed_dry_run_result())
    assert (
        "**The dry-run failed:** `NameError: name 'sa' (at "
        "migrations/versions/0003_orders_cleanup.py:14, during upgrade)`\n\n"
        "```text\nTraceback (most recent call last):"
    ) in markdown
    assert "<details>" not in markdown
    assert "0 statements up" not in markdown


def big_result(statements: int = 2_000, advice_chars: int = 200) -> tuple[CheckResult, int]:
    sql = [
        Statement(f"INSERT INTO t VALUES ({i}, '{'x' * 40}')", "upgrade", i, "0003", CLEANUP, i)
        for i in range(statements)
    ]
    down = [Statement(f"DELETE FROM t WHERE id = {i}", "downgrade", i) for i in range(statements)]
    size = advice_chars
    findings = [
        Finding("drop-column", Severity.ERROR, f"finding {i}", CLEANUP, i, advice="y" * size)
        for i in range(50)
    ]
    result = sample_result(dry_run=DryRun(upgrade=sql, downgrade=down), findings=findings)
    return result, len(render_markdown(result, max_chars=10**9))


def test_the_default_limit_is_the_check_run_summary_limit() -> None:
    result, full = big_result()
    assert full > MAX_CHARS
    assert len(render_markdown(result)) <= MAX_CHARS


def test_sql_is_cut_first_keeping_the_leading_upgrade_statements() -> None:
    result, _ = big_result()
    markdown = render_markdown(result, max_chars=40_000)
    assert len(markdown) <= 40_000
    assert "### Safe patterns" in markdown  # advice kept
    match = re.search(r"Upgrade SQL \(first (\d+) of 2000\)", markdown)
    assert match is not None and int(match.group(1)) > 100
    assert "Downgrade SQL" not in markdown
    assert markdown.rstrip().endswith(
        f"_Cut to fit the summary's size limit: the upgrade SQL after statement "
        f"{match.group(1)} of 2000; the downgrade SQL. "
        "The full report: `migsafe check --format json`._"
    )


def test_downgrade_sql_is_kept_when_the_whole_upgrade_fits() -> None:
    result, full = big_result(statements=20)
    markdown = render_markdown(result, max_chars=full - 100)
    assert "Upgrade SQL (20 statements)" in markdown
    assert re.search(r"Downgrade SQL \(first \d+ of 20\)", markdown)
    assert len(markdown) <= full - 100


def test_advice_is_cut_after_the_sql() -> None:
    result, _ = big_result(advice_chars=2_000)
    markdown = render_markdown(result, max_chars=20_000)
    assert len(markdown) <= 20_000
    assert "### Safe patterns" not in markdown
    assert "<details>" not in markdown
    assert "the upgrade SQL; the downgrade SQL; the safe-pattern advice." in markdown
    assert len(table_rows(markdown)) == 51  # every finding still in the table


def test_table_rows_are_cut_last_and_the_note_counts_them() -> None:
    result, _ = big_result()
    markdown = render_markdown(result, max_chars=3_000)
    assert len(markdown) <= 3_000
    rows = len(table_rows(markdown)) - 1
    assert 0 < rows < 50
    assert f"the last {50 - rows} rows of the findings table." in markdown


@pytest.mark.parametrize("limit", [0, 1, 10, 100, 500, 1_000, 5_000, 30_000, 65_535])
def test_never_exceeds_max_chars(limit: int) -> None:
    result, _ = big_result(advice_chars=1_000)
    markdown = render_markdown(result, max_chars=limit)
    assert len(markdown) <= limit


def test_a_report_that_fits_is_not_cut() -> None:
    markdown = render_markdown(sample_result())
    assert "Cut to fit" not in markdown
    assert len(markdown) < MAX_CHARS


def test_long_lists_outside_the_table_are_shortened() -> None:
    many = [
        Finding("drop-column", Severity.ERROR, f"m{i}", CLEANUP, i, approval_roles=["backend-lead"])
        for i in range(1, 26)
    ]
    markdown = render_markdown(sample_result(findings=many, approvals_required=["backend-lead"]))
    approvals = next(line for line in markdown.splitlines() if line.startswith("- **backend"))
    assert approvals.count("`drop-column` at") == 10
    assert approvals.endswith(", and 15 more")
    assert len(table_rows(markdown)) == 26


MIXED_ADVICE = (
    "Set it before the first lock-taking statement of the migration:\n"
    "SET lock_timeout = '30s';\n"
    "-- in Alembic, at the start of upgrade():\n"
    "op.execute(\"SET lock_timeout = '30s'\")\n"
    "1. Remove `legacy` from the model and deploy that release.\n"
    "2. In a later migration:\n"
    "   ALTER TABLE orders DROP COLUMN legacy;\n"
    "with op.get_context().autocommit_block():\n"
    '    op.create_index("ix", "orders", ["status"], postgresql_concurrently=True)'
)


def test_advice_splits_prose_sql_and_python_into_their_own_blocks() -> None:
    finding = Finding("missing-lock-timeout", Severity.ERROR, "m", CLEANUP, 1, advice=MIXED_ADVICE)
    markdown = render_markdown(sample_result(findings=[finding]))
    advice = markdown.split(f"#### `missing-lock-timeout` at `{CLEANUP}:1`\n\n", 1)[1]
    advice = advice.split("\n\n### ", 1)[0]
    assert advice == (
        "Set it before the first lock-taking statement of the migration:\n\n"
        "```sql\nSET lock_timeout = '30s';\n```\n\n"
        "in Alembic, at the start of upgrade():\n\n"
        "```python\nop.execute(\"SET lock_timeout = '30s'\")\n```\n\n"
        "1. Remove `legacy` from the model and deploy that release.\n"
        "2. In a later migration:\n\n"
        "```sql\nALTER TABLE orders DROP COLUMN legacy;\n```\n\n"
        "```python\nwith op.get_context().autocommit_block():\n"
        '    op.create_index("ix", "orders", ["status"], postgresql_concurrently=True)\n```'
    )


def test_statements_alembic_adds_itself_carry_no_origin_comment() -> None:
    begin = Statement("BEGIN", "upgrade", 0)
    markdown = render_markdown(sample_result(dry_run=DryRun(upgrade=[begin])))
    assert "<summary>Upgrade SQL (1 statement)</summary>\n\n```sql\nBEGIN;\n```" in markdown
