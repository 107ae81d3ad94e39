"""The registry holds every rule to a documentation page and to tests.

Each registered rule has `docs/rules/<id>.md` with its sections; every page belongs to a
registered rule. An SQL rule's page is its positive and negative test: its Bad SQL, run
through `migsafe lint`'s path, yields the rule, and its Good SQL does not (the
destructive rules' good examples document and suppress the change, which is how the
checklist accepts one: no unsuppressed finding). Every other rule is named by a test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.analysis.batch import BATCH_CALLS
from bot.analysis.engine import analyze_downgrade
from bot.analysis.model import Phase, Statement
from bot.analysis.options import PgVersion, parse_pg_version
from bot.analysis.parse import parse_statements, split_sql_located
from bot.analysis.registry import RULES, by_stage
from bot.analysis.rule import PointsAt, Stage, doc_url
from bot.lint import SqlSource, lint_sources
from bot.policy.config import Policy
from bot.report.markdown import render_markdown
from bot.report.sarif import to_sarif
from bot.result import PolicyOrigin

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "rules"
SECTIONS = ("## What it catches", "## Why it matters", "## Bad", "## Good", "## Notes")
SQL_RULES = [rule.id for rule in by_stage(Stage.SQL)]
DOWNGRADE_RULES = [rule.id for rule in by_stage(Stage.DOWNGRADE)]
OTHER_RULES = [rule.id for rule in RULES.values() if rule.stage not in (Stage.SQL, Stage.DOWNGRADE)]


def page(rule_id: str) -> str:
    return (DOCS / f"{rule_id}.md").read_text(encoding="utf-8")


def section(text: str, title: str) -> str:
    """The body of `## title`, up to the next `## `."""
    start = text.index(f"## {title}\n") + len(title) + 4
    end = text.find("\n## ", start)
    return text[start : end if end >= 0 else len(text)]


def sql_block(text: str, title: str) -> str:
    match = re.search(r"```sql\n(.*?)\n```", section(text, title), re.DOTALL)
    assert match is not None, f"no ```sql block under ## {title}"
    return match.group(1)


def linted(sql: str, name: str, pg_version: PgVersion | None = None) -> list[tuple[str, bool]]:
    """(rule, suppressed) of every finding `migsafe lint` reports for `sql`."""
    origin = PolicyOrigin(None, None, "the checklist's defaults")
    result = lint_sources([SqlSource(name, sql)], Policy.default(), origin, pg_version=pg_version)
    return [(f.rule, f.suppressed) for f in result.findings]


def pg_version_of(text: str, title: str) -> PgVersion | None:
    """A version-dependent rule's example says which server it is linted for, as in
    "Linted with `--pg-version 14.2`"."""
    match = re.search(r"`--pg-version ([0-9.]+)`", section(text, title))
    return parse_pg_version(match.group(1)) if match else None


@pytest.mark.parametrize("rule_id", list(RULES))
def test_every_rule_has_its_page_with_every_section(rule_id: str) -> None:
    text = page(rule_id)
    assert text.startswith(f"# {rule_id}\n")
    positions = [text.find(f"\n{title}\n") for title in SECTIONS]
    assert -1 not in positions, f"docs/rules/{rule_id}.md lacks a section"
    assert positions == sorted(positions), "sections out of order"
    assert "```" in section(text, "Bad") and "```" in section(text, "Good")
    assert f"ignore[{rule_id}]" in section(text, "Notes")
    assert 20 <= len(text.splitlines()) <= 50


def test_every_page_belongs_to_a_registered_rule_and_the_index_lists_them_all() -> None:
    pages = {path.stem for path in DOCS.glob("*.md")} - {"README"}
    assert pages == set(RULES)
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    assert set(re.findall(r"\]\(([a-z0-9-]+)\.md\)", index)) == set(RULES)


@pytest.mark.parametrize("rule_id", SQL_RULES)
def test_an_sql_rules_bad_example_is_flagged_and_its_good_one_is_not(rule_id: str) -> None:
    text = page(rule_id)
    bad = linted(sql_block(text, "Bad"), "bad.sql", pg_version_of(text, "Bad"))
    good = linted(sql_block(text, "Good"), "good.sql", pg_version_of(text, "Good"))
    assert (rule_id, False) in bad
    assert (rule_id, False) not in good


def _streams(sql: str) -> tuple[list[Statement], list[Statement]]:
    """A `-- upgrade` / `-- downgrade` example split into its two parsed streams."""
    upgrade_sql, downgrade_sql = sql.split("-- downgrade\n")
    return _parsed(upgrade_sql, "upgrade"), _parsed(downgrade_sql, "downgrade")


def _parsed(sql: str, phase: Phase) -> list[Statement]:
    located = split_sql_located(sql)
    return parse_statements(
        Statement(text, phase, n, line=line) for n, (line, text) in enumerate(located)
    )


@pytest.mark.parametrize("rule_id", DOWNGRADE_RULES)
def test_a_downgrade_rules_bad_example_is_flagged_and_its_good_one_is_not(rule_id: str) -> None:
    text = page(rule_id)
    bad = analyze_downgrade(*_streams(sql_block(text, "Bad")))
    good = analyze_downgrade(*_streams(sql_block(text, "Good")))
    assert rule_id in {f.rule for f in bad}
    assert rule_id not in {f.rule for f in good}


def _test_sources() -> dict[Path, str]:
    tests = ROOT / "tests"
    return {
        path: path.read_text(encoding="utf-8")
        for path in tests.rglob("*.py")
        if path != Path(__file__).resolve() and "fixtures" not in path.parts
    }


def test_every_other_rule_is_named_by_a_test() -> None:
    sources = _test_sources()
    untested = [
        rule_id
        for rule_id in OTHER_RULES
        if not any(re.search(rf"\b{re.escape(rule_id)}\b", text) for text in sources.values())
    ]
    assert OTHER_RULES and untested == []


def test_every_place_a_finding_can_point_at_has_its_batch_calls() -> None:
    assert set(BATCH_CALLS) == set(PointsAt) - {PointsAt.STATEMENT}
    used = {rule.points_at for rule in RULES.values()}
    assert used <= set(PointsAt)


def test_sql_rules_judge_actions_with_a_check_and_others_judge_none() -> None:
    for rule in RULES.values():
        if rule.stage is Stage.SQL:
            assert rule.judges and rule.check is not None, rule.id
        else:
            assert rule.judges == (), rule.id
        assert rule.safe_alternative and "\n" not in rule.safe_alternative, rule.id


def test_sarif_and_the_markdown_report_link_each_rule_to_its_page() -> None:
    origin = PolicyOrigin(None, None, "the checklist's defaults")
    sql = sql_block(page("drop-column"), "Bad")
    result = lint_sources([SqlSource("bad.sql", sql)], Policy.default(), origin)
    described = to_sarif(result)["runs"][0]["tool"]["driver"]["rules"]
    assert {rule["id"]: rule["helpUri"] for rule in described} == {
        rule_id: doc_url(rule_id) for rule_id in RULES
    }
    for rule_id in RULES:  # each link names a page of this repository
        assert (ROOT / doc_url(rule_id).split("/blob/main/", 1)[1]).is_file()
    markdown = render_markdown(result)
    assert f"[`drop-column`]({doc_url('drop-column')})" in markdown
