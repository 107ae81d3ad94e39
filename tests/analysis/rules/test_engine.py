"""The engine: rule catalogue, subsets, bookkeeping, and the checklist's acceptance case."""

from __future__ import annotations

from bot.analysis.engine import AnalysisOptions, analyze_upgrade
from bot.analysis.registry import INFOS as RULE_INFOS
from bot.analysis.registry import by_stage
from bot.analysis.rule import Stage

from .helpers import TIMEOUTS, errors, ids, run, statements

# The checklist's add-then-backfill-then-swap example, verbatim.
CHECKLIST_EXAMPLE = """
-- Step 1: Add nullable column
ALTER TABLE attribution_events ADD COLUMN processing_status VARCHAR(20) NULL;

-- Step 2: Backfill existing rows
UPDATE attribution_events SET processing_status = 'processed' WHERE processing_status IS NULL;

-- Step 3: Add NOT NULL constraint
ALTER TABLE attribution_events ALTER COLUMN processing_status SET NOT NULL;

-- Step 4: Add default for new rows
ALTER TABLE attribution_events ALTER COLUMN processing_status SET DEFAULT 'pending';
"""

PUBLIC_IDS = {
    "drop-table",
    "drop-column",
    "drop-index",
    "alter-column-type",
    "truncate-table",
    "missing-lock-timeout",
    "missing-statement-timeout",
    "add-not-null-column",
    "set-not-null",
    "create-index-non-concurrently",
    "drop-index-non-concurrently",
    "add-foreign-key-validated",
    "add-check-constraint-validated",
    "add-unique-constraint",
    "volatile-default",
    "rename-column",
    "rename-table",
    "backfill-in-migration",
    "disable-rls",
    "drop-policy",
    "destructive-downgrade",
}


def test_checklist_example_with_timeouts_has_no_error_finding() -> None:
    sql = f"BEGIN;\n{TIMEOUTS}{CHECKLIST_EXAMPLE}\nCOMMIT;"
    findings = run(sql)
    assert errors(findings) == []
    assert sorted(ids(findings)) == ["backfill-in-migration", "set-not-null"]


def test_checklist_example_without_timeouts_fails_on_the_timeouts_only() -> None:
    findings = run(f"BEGIN;\n{CHECKLIST_EXAMPLE}\nCOMMIT;")
    assert sorted(ids(errors(findings))) == ["missing-lock-timeout", "missing-statement-timeout"]


def test_the_public_rule_ids_are_all_there() -> None:
    assert set(RULE_INFOS) >= PUBLIC_IDS
    for info in RULE_INFOS.values():
        assert info.summary and len(info.explanation) > 80


def test_every_statement_rule_says_which_actions_it_reads() -> None:
    for rule in by_stage(Stage.SQL):
        assert rule.judges and rule.check is not None


def test_enabled_runs_only_the_named_rules() -> None:
    sql = "DROP TABLE users;\nALTER TABLE users RENAME TO u;"
    assert ids(run(sql, "rename-table")) == ["rename-table"]
    everything = set(ids(run(sql)))
    assert {"drop-table", "rename-table", "missing-lock-timeout"} <= everything


def test_a_multi_clause_alter_table_is_judged_clause_by_clause() -> None:
    sql = f"{TIMEOUTS}ALTER TABLE users ADD COLUMN a int NOT NULL, DROP COLUMN b;"
    assert ids(run(sql)) == ["drop-column", "add-not-null-column"]


def test_alembic_version_table_is_skipped_even_when_creating_it() -> None:
    sql = (
        "BEGIN;\nCREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
        "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));\n"
        "INSERT INTO alembic_version (version_num) VALUES ('a1');\n"
        "UPDATE alembic_version SET version_num='b2';\nDELETE FROM alembic_version;\nCOMMIT;"
    )
    assert run(sql) == []


def test_findings_carry_the_statement_origin_and_default_severity() -> None:
    stream = statements("DROP TABLE users;", revision="abc123")
    (finding,) = analyze_upgrade(stream, AnalysisOptions(enabled=frozenset({"drop-table"})))
    assert finding.revision == "abc123" and finding.path == "m.py" and finding.line == 1
    assert finding.severity is RULE_INFOS["drop-table"].default_severity
    assert finding.advice and not finding.suppressed
