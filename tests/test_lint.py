"""`migsafe lint` end to end: real SQL files, the real CLI, the documented report schemas."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.lint import SqlSource, lint_sources
from bot.policy.config import Policy
from bot.result import PolicyOrigin
from tests.report.test_json import validator as json_validator
from tests.report.test_sarif import validator as sarif_validator

RISKY = """\
-- orders cleanup
ALTER TABLE orders DROP COLUMN legacy_ref;

CREATE INDEX orders_status ON orders (status);
ALTER TABLE orders
    ALTER COLUMN total TYPE numeric(12, 2);
"""

CLEAN = """\
SET lock_timeout = '5s';
SET statement_timeout = '1min';
CREATE TABLE audit (id bigint PRIMARY KEY, note text);
CREATE INDEX audit_note ON audit (note);
ALTER TABLE audit ADD COLUMN seen boolean;
"""


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty repository root (no policy file) as the current directory."""
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def lint(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["lint", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def report_of(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = lint(capsys, *argv, "--format", "json")
    document: dict[str, Any] = json.loads(out)
    json_validator().validate(document)
    return code, document


def found(report: dict[str, Any]) -> set[tuple[str, str, int]]:
    return {(f["rule"], f["path"], f["line"]) for f in report["findings"] if not f["suppressed"]}


def test_destructive_and_locking_statements_are_reported_at_their_lines(repo, capsys):
    (repo / "cleanup.sql").write_text(RISKY, encoding="utf-8")
    code, report = report_of(capsys, "cleanup.sql", "--env", "production")
    assert code == 1
    assert {
        ("drop-column", "cleanup.sql", 2),
        ("missing-lock-timeout", "cleanup.sql", 2),
        ("create-index-non-concurrently", "cleanup.sql", 4),
        ("alter-column-type", "cleanup.sql", 5),
    } <= found(report)
    assert report["revisions"] == [] and report["exit_code"] == 1
    assert report["judged"]["revisions"]["origin"] == "sql"
    assert {f["source"] for f in report["findings"] if f["rule"] == "drop-column"} == {"sql"}
    assert report["sandbox"]["ran"] is False
    assert [s["line"] for s in report["dry_run"]["statements"]] == [2, 4, 5]


def test_a_statement_no_rule_can_read_is_an_unparsed_statement_notice(repo, capsys):
    (repo / "broken.sql").write_text("SET lock_timeout = '5s';\nALTER TABLE;\n", encoding="utf-8")
    code, report = report_of(capsys, "broken.sql")
    [unparsed] = [f for f in report["findings"] if f["rule"] == "unparsed-statement"]
    assert (unparsed["severity"], unparsed["line"]) == ("notice", 2)
    assert code == 0


def test_text_report_names_file_and_line(repo, capsys):
    (repo / "cleanup.sql").write_text(RISKY, encoding="utf-8")
    code, out, _ = lint(capsys, "cleanup.sql")
    assert code == 1
    assert "cleanup.sql:4  error    create-index-non-concurrently" in out
    assert "alembic downgrade" not in out


def test_a_clean_file_exits_0(repo, capsys):
    (repo / "clean.sql").write_text(CLEAN, encoding="utf-8")
    code, report = report_of(capsys, "clean.sql", "--pg-version", "16")
    assert code == 0
    assert report["findings"] == []


def test_tables_created_in_the_input_count_as_new(repo, capsys):
    (repo / "new.sql").write_text(
        "CREATE TABLE t (id int);\nCREATE INDEX t_id ON t (id);\n", encoding="utf-8"
    )
    _, report = report_of(capsys, "new.sql")
    assert "create-index-non-concurrently" not in {f["rule"] for f in report["findings"]}


def test_standard_input(repo, capsys, monkeypatch):
    stdin = io.TextIOWrapper(io.BytesIO(RISKY.encode("utf-8")), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)
    code, report = report_of(capsys, "-")
    assert code == 1
    assert ("create-index-non-concurrently", "<stdin>", 4) in found(report)


def test_suppression_with_a_reason_applies_without_one_is_a_finding(repo, capsys):
    (repo / "s.sql").write_text(
        "-- migsafe: ignore[create-index-non-concurrently] ten rows, built in ms\n"
        "CREATE INDEX a_x ON a (x);\n"
        "CREATE INDEX b_x ON b (x); -- migsafe: ignore[create-index-non-concurrently] tiny\n"
        "-- migsafe: ignore[create-index-non-concurrently]\n"
        "CREATE INDEX c_x ON c (x);\n",
        encoding="utf-8",
    )
    code, report = report_of(capsys, "s.sql")
    findings = report["findings"]
    suppressed = {(f["line"], f["suppression_reason"]) for f in findings if f["suppressed"]}
    assert suppressed == {(2, "ten rows, built in ms"), (3, "tiny")}
    assert ("create-index-non-concurrently", "s.sql", 5) in found(report)
    assert ("suppression-missing-reason", "s.sql", 4) in found(report)
    assert code == 1  # c_x still counts


def test_policy_is_found_upward_and_env_applies(repo, capsys, monkeypatch):
    (repo / ".github").mkdir()
    (repo / ".github" / "migsafe.yml").write_text(
        "rules:\n  create-index-non-concurrently: off\n", encoding="utf-8"
    )
    sub = repo / "db"
    sub.mkdir()
    (sub / "i.sql").write_text("CREATE INDEX a_x ON a (x);\n", encoding="utf-8")
    monkeypatch.chdir(sub)
    _, report = report_of(capsys, "i.sql", "--env", "staging")
    assert report["judged"]["policy"]["path"].endswith(".github/migsafe.yml")
    assert report["environment"] == "staging"
    assert "create-index-non-concurrently" not in {f["rule"] for f in report["findings"]}


def test_sarif_output_validates(repo, capsys):
    (repo / "cleanup.sql").write_text(RISKY, encoding="utf-8")
    out_file = repo / "out.sarif"
    code, out, _ = lint(capsys, "cleanup.sql", "--format", "sarif", "--output", str(out_file))
    assert code == 1 and out == ""
    sarif = json.loads(out_file.read_text(encoding="utf-8"))
    sarif_validator().validate(sarif)
    locations = {
        (r["ruleId"], r["locations"][0]["physicalLocation"]["region"]["startLine"])
        for r in sarif["runs"][0]["results"]
    }
    assert ("drop-column", 2) in locations


def test_markdown_output(repo, capsys):
    (repo / "cleanup.sql").write_text(RISKY, encoding="utf-8")
    code, out, _ = lint(capsys, "cleanup.sql", "--format", "markdown")
    assert code == 1 and "`cleanup.sql:2`" in out and "Rollback" not in out


@pytest.mark.parametrize(
    ("content", "name", "what"),
    [
        (None, "missing.sql", "missing.sql: no such file"),
        (b"\xff\xfeDROP TABLE x;", "bin.sql", "bin.sql: not UTF-8 text"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(repo, capsys, content, name, what):
    if content is not None:
        (repo / name).write_bytes(content)
    code, out, err = lint(capsys, name)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and what in err and "Traceback" not in err


def test_alembic_offline_sql_on_standard_input(repo, capsys, monkeypatch):
    """`alembic upgrade head --sql | migsafe lint -`: Alembic's bookkeeping is not judged."""
    sql = (
        "BEGIN;\n\nCREATE TABLE alembic_version (\n    version_num VARCHAR(32) NOT NULL\n);\n\n"
        "-- Running upgrade  -> 0001\n\nSET lock_timeout = '5s';\nSET statement_timeout = '1min';\n"
        "ALTER TABLE orders ADD COLUMN note text;\n\n"
        "INSERT INTO alembic_version (version_num) VALUES ('0001');\n\nCOMMIT;\n"
    )
    stdin = io.TextIOWrapper(io.BytesIO(sql.encode("utf-8")), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)
    code, report = report_of(capsys, "-", "--env", "production")
    assert (code, report["findings"]) == (0, [])
    assert [s["line"] for s in report["dry_run"]["statements"]] == [1, 3, 9, 10, 11, 13, 15]


def test_the_documenting_comment_advised_for_plain_sql_is_an_sql_comment() -> None:
    origin = PolicyOrigin(None, None, "the checklist's defaults")
    result = lint_sources(
        [SqlSource("drop.sql", "DROP TABLE legacy;\n")],
        Policy.default(),
        origin,
        environment="production",
    )
    [undocumented] = [f for f in result.findings if f.rule == "destructive-undocumented"]
    assert "\n-- Drops table legacy:" in (undocumented.advice or "")
