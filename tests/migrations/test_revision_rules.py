"""missing-downgrade, multiple-heads and destructive-undocumented."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bot.analysis.migration_model import MigrationFile
from bot.analysis.model import Family, Finding, Severity
from bot.analysis.registry import by_stage
from bot.analysis.revision_graph import RevisionGraph
from bot.analysis.rule import Stage
from bot.analysis.rules.revisions import (
    missing_downgrade_findings,
    multiple_heads_findings,
    undocumented_findings,
)
from bot.analysis.rules.static import static_findings
from bot.migrations.project import find_project
from bot.migrations.scan import scan_project, scan_source
from bot.report.sarif import fingerprint

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "projects"
PATH = "versions/abcd1234.py"


def migration(body: str, *, new: bool = True) -> MigrationFile:
    header = 'from alembic import op\n\nrevision = "abcd1234"\n'
    scanned = scan_source(header + textwrap.dedent(body), PATH)
    scanned.new = new
    return scanned


def fixture_graph(name: str) -> RevisionGraph:
    return RevisionGraph(scan_project(find_project(FIXTURES / name)))


def undocumented(body: str) -> list[Finding]:
    file = migration(body)
    return undocumented_findings(static_findings([file]), {file.path: file})


# --- missing-downgrade -----------------------------------------------------------------------


def test_empty_downgrade_of_a_new_revision() -> None:
    file = migration("def upgrade():\n    op.drop_table('t')\n\ndef downgrade():\n    pass\n")
    (finding,) = missing_downgrade_findings([file])
    assert (finding.rule, finding.severity, finding.line) == (
        "missing-downgrade",
        Severity.ERROR,
        7,
    )
    assert "downgrade() is empty" in finding.message


def test_missing_downgrade_points_at_upgrade() -> None:
    (finding,) = missing_downgrade_findings([migration("def upgrade():\n    op.drop_table('t')\n")])
    assert finding.line == 4
    assert "is missing" in finding.message


def test_real_downgrade_old_files_and_merge_revisions_are_fine() -> None:
    full = migration(
        "def upgrade():\n    op.create_table('t')\n\ndef downgrade():\n    op.drop_table('t')\n"
    )
    old = migration("def upgrade():\n    op.drop_table('t')\n", new=False)
    graph = fixture_graph("merge")
    graph.new_since("base")
    assert missing_downgrade_findings([full, old, *graph.ordered_files()]) == []


# --- multiple-heads --------------------------------------------------------------------------


def test_two_heads_are_reported_with_both_listed() -> None:
    graph = fixture_graph("branches")
    graph.new_since("bbbb00000002")
    (finding,) = multiple_heads_findings(graph)
    assert finding.rule == "multiple-heads"
    assert "bbbb00000002" in finding.message and "cccc00000003" in finding.message
    assert finding.path == "migrations/versions/cccc00000003_add_phone.py"
    assert finding.advice == 'alembic merge -m "merge heads" bbbb00000002 cccc00000003'


def test_one_head_or_labelled_branches_are_fine() -> None:
    assert multiple_heads_findings(fixture_graph("merge")) == []
    labelled = RevisionGraph(
        [
            MigrationFile(path="a.py", revision="aaaa", down_revisions=(), branch_labels=("app",)),
            MigrationFile(
                path="b.py", revision="bbbb", down_revisions=(), branch_labels=("audit",)
            ),
            MigrationFile(path="c.py", revision="cccc", down_revisions=("aaaa",)),
        ]
    )
    assert multiple_heads_findings(labelled) == []


# --- destructive-undocumented ----------------------------------------------------------------


def test_undocumented_drop_is_reported() -> None:
    (finding,) = undocumented(
        """
        def upgrade():
            op.create_table("x")
            op.drop_table("users")
        """
    )
    assert (finding.rule, finding.line, finding.path) == ("destructive-undocumented", 7, PATH)
    assert "drop-table" in finding.message


def test_undocumented_fingerprint_does_not_change_when_lines_move() -> None:
    body = """
        def upgrade():
            op.drop_table("users")
        """
    (before,) = undocumented(body)
    (after,) = undocumented("\n\n" + body)
    assert after.line == before.line + 2
    assert fingerprint(after) == fingerprint(before)


@pytest.mark.parametrize(
    "body",
    [
        "# users moved to accounts in 0042; table empty since release 3.1\nop.drop_table('users')",
        "op.drop_table('users')  # replaced by accounts (ADR-7)",
        "# Replaced by accounts.\n# migsafe: ignore[drop-table] approved\nop.drop_table('users')",
        # A suppression's reason is the explanation the checklist asks for (issue 12).
        "# migsafe: ignore[drop-table] approved by lead\nop.drop_table('users')",
        "op.alter_column(\n    'users',\n    'age',  # int overflowed at 2^31 (incident 12)\n"
        "    type_=sa.BigInteger(),\n)",
    ],
)
def test_documented_drop_is_fine(body: str) -> None:
    indented = textwrap.indent(body, "    ")
    assert undocumented(f"def upgrade():\n{indented}\n") == []


@pytest.mark.parametrize(
    "body",
    [
        "# migsafe: ignore[drop-column] wrong rule\nop.drop_table('users')",
        "# migsafe: ignore[drop-table]\nop.drop_table('users')",  # no reason: no suppression
        "# ### commands auto generated by Alembic - please adjust! ###\nop.drop_table('users')",
        "# users is unused\n\nop.drop_table('users')",
        "op.create_table('x')  # a new table\nop.drop_table('users')",
        "#\nop.drop_table('users')  # noqa: E501",
    ],
)
def test_comments_that_do_not_document(body: str) -> None:
    indented = textwrap.indent(body, "    ")
    assert [f.rule for f in undocumented(f"def upgrade():\n{indented}\n")] == [
        "destructive-undocumented"
    ]


def test_sql_and_static_findings_on_one_line_give_one_finding() -> None:
    file = migration("def upgrade():\n    op.drop_table('users')\n")
    sql = Finding(
        rule="drop-table", severity=Severity.ERROR, message="m", path=PATH, line=5, source="sql"
    )
    findings = undocumented_findings([*static_findings([file]), sql], {PATH: file})
    assert len(findings) == 1


def test_old_files_downgrades_and_other_rules_are_not_judged() -> None:
    old = migration("def upgrade():\n    op.drop_table('users')\n", new=False)
    new = migration("def upgrade():\n    op.drop_table('users')\n")
    down = Finding(
        rule="drop-table",
        severity=Severity.ERROR,
        message="m",
        path=PATH,
        line=5,
        phase="downgrade",
    )
    other = Finding(rule="set-not-null", severity=Severity.ERROR, message="m", path=PATH, line=5)
    assert undocumented_findings(static_findings([old]), {PATH: old}) == []
    assert undocumented_findings([down, other], {PATH: new}) == []


def test_linear_fixture_drop_is_documented() -> None:
    graph = fixture_graph("linear")
    graph.new_since("2b3c4d5e6f7a")
    files = {f.path: f for f in graph.ordered_files()}
    destructive = static_findings(graph.ordered_files())
    assert [f.rule for f in destructive] == ["drop-column"]
    assert undocumented_findings(destructive, files) == []


def test_rule_infos() -> None:
    RULE_INFOS = {rule.id: rule.info for rule in by_stage(Stage.STATIC)}
    assert set(RULE_INFOS) == {"missing-downgrade", "multiple-heads", "destructive-undocumented"}
    assert RULE_INFOS["destructive-undocumented"].family is Family.DESTRUCTIVE
    assert RULE_INFOS["multiple-heads"].family is Family.REVISION
