"""`# migsafe: ignore[rule] reason` comments: what they suppress and when they are findings."""

from __future__ import annotations

import textwrap
from pathlib import Path

from bot.analysis.migration_model import MigrationFile
from bot.analysis.model import Finding, Severity
from bot.analysis.revision_graph import RevisionGraph
from bot.analysis.rules.static import static_findings
from bot.analysis.suppress import apply_suppressions
from bot.migrations.project import find_project
from bot.migrations.scan import scan_project, scan_source

KNOWN = {"drop-table", "drop-column", "truncate-table"}
PATH = "versions/abcd1234.py"


def migration(body: str, *, new: bool = True) -> MigrationFile:
    scanned = scan_source('revision = "abcd1234"\n' + textwrap.dedent(body), PATH)
    scanned.new = new
    return scanned


def finding(rule: str, line: int) -> Finding:
    return Finding(rule=rule, severity=Severity.ERROR, message="m", path=PATH, line=line)


SOURCE = """\
def upgrade():
    op.drop_table("a")  # migsafe: ignore[drop-table] emptied in 0041
    # migsafe: ignore[drop-column, truncate-table] archived to S3 first
    op.drop_column("b", "c")

    # migsafe: ignore[drop-table] too far above

    op.drop_table("d")
"""


def test_suppression_on_the_same_line_or_the_line_above() -> None:
    files = {PATH: migration(SOURCE)}
    result = apply_suppressions(
        [finding("drop-table", 3), finding("drop-column", 5), finding("truncate-table", 5)],
        files,
        KNOWN,
    )
    assert [(f.rule, f.suppressed, f.suppression_reason) for f in result] == [
        ("drop-table", True, "emptied in 0041"),
        ("drop-column", True, "archived to S3 first"),
        ("truncate-table", True, "archived to S3 first"),
    ]
    assert not any(f.blocking for f in result)


def test_suppression_does_not_reach_further_or_other_rules() -> None:
    files = {PATH: migration(SOURCE)}
    result = apply_suppressions(
        [finding("drop-table", 9), finding("drop-column", 3), finding("drop-table", 5)],
        files,
        KNOWN,
    )
    assert [f.suppressed for f in result] == [False, False, False]


def test_suppression_without_reason_does_not_suppress_and_is_a_finding() -> None:
    files = {
        PATH: migration(
            "def upgrade():\n    # migsafe: ignore[drop-table]\n    op.drop_table('a')\n"
        )
    }
    result = apply_suppressions([finding("drop-table", 4)], files, KNOWN)
    assert not result[0].suppressed
    meta = result[1]
    assert (meta.rule, meta.severity, meta.path, meta.line) == (
        "suppression-missing-reason",
        Severity.WARNING,
        PATH,
        3,
    )


def test_unknown_rule_id_is_a_finding() -> None:
    files = {PATH: migration("# migsafe: ignore[drop-tabel, drop-table] typo\n")}
    result = apply_suppressions([], files, KNOWN)
    assert [(f.rule, f.line) for f in result] == [("suppression-unknown-rule", 2)]
    assert "'drop-tabel'" in result[0].message


def test_empty_rule_list_is_a_finding() -> None:
    files = {PATH: migration("# migsafe: ignore[] because\n")}
    assert [f.rule for f in apply_suppressions([], files, KNOWN)] == ["suppression-unknown-rule"]


def test_old_files_are_not_checked_for_malformed_suppressions() -> None:
    files = {PATH: migration("# migsafe: ignore[bogus]\n", new=False)}
    assert apply_suppressions([], files, KNOWN) == []


def test_findings_elsewhere_are_left_alone() -> None:
    loose = Finding(rule="multiple-heads", severity=Severity.ERROR, message="m")
    other = Finding(rule="drop-table", severity=Severity.ERROR, message="m", path="x.py", line=3)
    assert apply_suppressions([loose, other], {PATH: migration(SOURCE)}, KNOWN) == [loose, other]


def test_linear_fixture_drop_is_suppressed_end_to_end() -> None:
    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "projects" / "linear"
    graph = RevisionGraph(scan_project(find_project(fixture)))
    graph.new_since("2b3c4d5e6f7a")
    files = {f.path: f for f in graph.ordered_files()}
    result = apply_suppressions(static_findings(graph.ordered_files()), files, KNOWN)
    (drop,) = result
    assert drop.rule == "drop-column" and drop.suppressed
    assert drop.suppression_reason == "approved by the backend lead in PR 42"
