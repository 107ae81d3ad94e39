"""missing-lock-timeout and missing-statement-timeout."""

from __future__ import annotations

from .helpers import TIMEOUTS, ids, revisions, run

TIMEOUT_RULES = ("missing-lock-timeout", "missing-statement-timeout")


def test_lock_taking_statements_without_timeouts_give_one_finding_per_rule_and_revision() -> None:
    sql = (
        "BEGIN;\nALTER TABLE users ADD COLUMN a int;\n"
        "CREATE INDEX ix_a ON users (a);\nUPDATE users SET a = 1;\nCOMMIT;"
    )
    findings = run(sql, *TIMEOUT_RULES)
    assert ids(findings) == list(TIMEOUT_RULES)
    lock = findings[0]
    assert lock.line == 2  # the first offending statement
    assert "no lock_timeout is set at ADD COLUMN on users" in lock.message
    assert "≤ 30s" in lock.message
    assert "3 lock-taking statements in revision r1" in lock.message
    assert "SET lock_timeout = '30s';" in (lock.advice or "")
    assert "≤ 5min" in findings[1].message


def test_each_revision_gets_its_own_timeout_finding() -> None:
    stream = revisions(
        ("r1", "ALTER TABLE users ADD COLUMN a int;"),
        ("r2", "ALTER TABLE users ADD COLUMN b int;\nALTER TABLE users ADD COLUMN c int;"),
    )
    findings = run(stream, "missing-lock-timeout")
    assert [(f.revision, f.line) for f in findings] == [("r1", 1), ("r2", 1)]
    assert "1 lock-taking statement in revision r1" in findings[0].message
    assert "2 lock-taking statements in revision r2" in findings[1].message


def test_checklist_timeouts_satisfy_both_rules() -> None:
    sql = f"BEGIN;\n{TIMEOUTS}ALTER TABLE users ADD COLUMN a int;\nCOMMIT;"
    assert run(sql, *TIMEOUT_RULES) == []


def test_a_timeout_above_the_maximum_names_the_value_and_the_maximum() -> None:
    sql = "SET lock_timeout = '60s';\nSET statement_timeout = '1h';\nDROP TABLE users;"
    findings = run(sql, *TIMEOUT_RULES)
    assert "lock_timeout is 60s" in findings[0].message
    assert "the checklist requires ≤ 30s" in findings[0].message
    assert "statement_timeout is 1h" in findings[1].message


def test_a_zero_timeout_means_no_limit() -> None:
    sql = "SET lock_timeout = 0;\nTRUNCATE users;"
    findings = run(sql, "missing-lock-timeout")
    assert ids(findings) == ["missing-lock-timeout"]
    assert "no limit" in findings[0].message


def test_the_maximum_comes_from_the_options() -> None:
    sql = "SET lock_timeout = '60s';\nDROP TABLE users;"
    assert run(sql, "missing-lock-timeout", lock_timeout_max_ms=60_000) == []


def test_a_brand_new_table_without_foreign_keys_needs_no_timeout() -> None:
    sql = "BEGIN;\nCREATE TABLE things (id bigint PRIMARY KEY);\nCREATE INDEX ix ON things (id);"
    assert run(sql, *TIMEOUT_RULES) == []


def test_a_foreign_key_from_a_new_table_locks_the_existing_referenced_table() -> None:
    sql = "CREATE TABLE orders (id bigint, user_id bigint REFERENCES users (id));"
    findings = run(sql, "missing-lock-timeout")
    assert ids(findings) == ["missing-lock-timeout"]
    assert "FOREIGN KEY from orders to users" in findings[0].message


def test_set_local_lasts_until_commit() -> None:
    sql = (
        "BEGIN;\nSET LOCAL lock_timeout = '10s';\nALTER TABLE users ADD COLUMN a int;\n"
        "COMMIT;\nBEGIN;\nALTER TABLE users ADD COLUMN b int;\nCOMMIT;"
    )
    findings = run(sql, "missing-lock-timeout")
    assert [f.line for f in findings] == [6]
    assert "1 lock-taking statement" in findings[0].message


def test_session_set_survives_commit_as_in_an_autocommit_block() -> None:
    sql = (
        f"BEGIN;\n{TIMEOUTS}ALTER TABLE users ADD COLUMN a int;\nCOMMIT;\n"
        "CREATE INDEX CONCURRENTLY ix_a ON users (a);\nBEGIN;\nCOMMIT;"
    )
    assert run(sql, *TIMEOUT_RULES) == []


def test_reset_clears_the_timeout() -> None:
    sql = f"{TIMEOUTS}RESET lock_timeout;\nDROP TABLE users;"
    assert ids(run(sql, *TIMEOUT_RULES)) == ["missing-lock-timeout"]


def test_set_to_default_clears_the_timeout() -> None:
    sql = f"{TIMEOUTS}SET statement_timeout TO DEFAULT;\nDROP TABLE users;"
    assert ids(run(sql, *TIMEOUT_RULES)) == ["missing-statement-timeout"]


def test_set_config_counts_as_a_setting() -> None:
    sql = (
        "SELECT set_config('lock_timeout', '30s', false);\n"
        "SELECT set_config('statement_timeout', '5min', false);\nDROP TABLE users;"
    )
    assert run(sql, *TIMEOUT_RULES) == []


def test_statements_that_lock_nothing_existing_need_no_timeout() -> None:
    sql = "CREATE TABLE t (id int);\nALTER TABLE t ADD COLUMN a int;\nINSERT INTO t VALUES (1);"
    assert run(sql, *TIMEOUT_RULES) == []


def test_alembic_version_bookkeeping_is_not_judged() -> None:
    sql = "BEGIN;\nUPDATE alembic_version SET version_num='abc' WHERE version_num = 'x';\nCOMMIT;"
    assert run(sql) == []


def test_partition_persistence_and_trigger_statements_take_locks_that_need_timeouts() -> None:
    for sql in (
        "ALTER TABLE events ATTACH PARTITION events_2026 FOR VALUES IN (2026);",
        "ALTER TABLE events DETACH PARTITION events_2020;",
        "ALTER TABLE events SET UNLOGGED;",
        "ALTER TABLE events SET LOGGED;",
        "DROP TRIGGER audit ON events;",
    ):
        findings = run(sql, "missing-lock-timeout")
        assert ids(findings) == ["missing-lock-timeout"], sql
        assert "on events" in findings[0].message
        assert run(TIMEOUTS + sql, "missing-lock-timeout") == []
