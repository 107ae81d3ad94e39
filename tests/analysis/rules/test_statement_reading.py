"""Statements the SQL reader once misread, judged end to end by the real parser and engine:
each shape with the finding it must give, next to the one it must not."""

from __future__ import annotations

import pytest

from bot.analysis.model import ActionKind as K

from .helpers import TIMEOUTS, ids, in_transaction, run, statements

# --- a SQL-standard function body (BEGIN ATOMIC ... END) is one statement -------------------

ATOMIC_FUNCTION = (
    "CREATE FUNCTION f(i int) RETURNS int LANGUAGE sql\n"
    "BEGIN ATOMIC\n  SELECT CASE WHEN i > 0 THEN i END;\n  SELECT i + 1;\nEND;"
)


def test_an_atomic_function_body_is_not_cut_at_its_semicolons() -> None:
    sql = in_transaction(f"{ATOMIC_FUNCTION}\nCREATE INDEX CONCURRENTLY ix ON t (a);")
    read = statements(sql)
    assert [s.sql for s in read][3] == ATOMIC_FUNCTION.rstrip(";")
    assert ids(run(sql)) == ["concurrently-in-transaction"]  # no transaction-nesting


def test_an_end_after_the_body_still_commits() -> None:
    sql = f"BEGIN;\n{TIMEOUTS}{ATOMIC_FUNCTION}\nEND;\nCREATE INDEX CONCURRENTLY ix ON t (a);"
    assert ids(run(sql, "concurrently-in-transaction", "transaction-nesting")) == []
    assert ids(run(f"{sql}\nCOMMIT;", "transaction-nesting")) == ["transaction-nesting"]


# --- words in a comment or a string do not decide how a statement is read -------------------


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        (
            "ALTER TABLE orders -- VALIDATE CONSTRAINT comes later\n"
            "ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id);",
            "add-foreign-key-validated",
        ),
        ("ALTER TABLE t ADD COLUMN c int NOT NULL /* using index */;", "add-not-null-column"),
        (
            "ALTER TABLE t ADD COLUMN c text NOT NULL CHECK (c <> 'using index');",
            "add-not-null-column",
        ),
    ],
)
def test_a_keyword_in_a_comment_or_string_keeps_the_statements_rules(sql: str, rule: str) -> None:
    findings = run(in_transaction(sql))
    assert rule in ids(findings)
    assert "unknown-statement" not in ids(findings)


def test_the_same_keyword_outside_a_comment_is_still_read_from_tokens() -> None:
    sql = in_transaction("ALTER TABLE orders VALIDATE CONSTRAINT fk; -- using index")
    assert ids(run(sql)) == []
    [validate] = [a for s in statements(sql) for a in s.actions if a.kind is K.VALIDATE_CONSTRAINT]
    assert validate.name == "fk"


# --- ROLLBACK TO SAVEPOINT, AND CHAIN, and harmless session statements ---------------------


def test_rollback_to_a_savepoint_keeps_the_transaction() -> None:
    sql = in_transaction(
        "SAVEPOINT sp;\nROLLBACK TO SAVEPOINT sp;\nRELEASE SAVEPOINT sp;\n"
        "CREATE INDEX CONCURRENTLY ix ON t (a);\nVACUUM t;"
    )
    assert ids(run(sql)) == ["concurrently-in-transaction", "vacuum-in-transaction"]


def test_a_full_rollback_still_ends_the_transaction_and_is_flagged() -> None:
    sql = in_transaction("ROLLBACK;\nVACUUM t;")
    # the VACUUM after it runs outside any transaction
    assert ids(run(sql, "transaction-nesting", "vacuum-in-transaction")) == ["transaction-nesting"]


def test_commit_and_chain_starts_a_new_transaction() -> None:
    sql = in_transaction("COMMIT AND CHAIN;\nVACUUM t;")
    assert ids(run(sql, "transaction-nesting", "vacuum-in-transaction")) == [
        "vacuum-in-transaction"
    ]
    plain = in_transaction("COMMIT AND NO CHAIN;\nVACUUM t;")
    assert ids(run(plain, "vacuum-in-transaction")) == []


def test_rollback_and_chain_is_flagged_and_starts_a_new_transaction() -> None:
    sql = in_transaction("ROLLBACK AND CHAIN;\nVACUUM t;")
    assert ids(run(sql, "transaction-nesting", "vacuum-in-transaction")) == [
        "transaction-nesting",
        "vacuum-in-transaction",
    ]


@pytest.mark.parametrize(
    "sql",
    [
        "SAVEPOINT sp;",
        "RELEASE SAVEPOINT sp;",
        "RELEASE sp;",
        "ROLLBACK TO sp;",
        "NOTIFY jobs, 'go';",
        "LISTEN jobs;",
        "UNLISTEN *;",
        "CHECKPOINT;",
        "DISCARD PLANS;",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO reporting;",
    ],
)
def test_harmless_session_statements_are_recognised(sql: str) -> None:
    [stmt] = statements(sql)
    assert stmt.parse_error is None  # no unparsed-statement
    assert run(in_transaction(sql)) == []


def test_an_unknown_statement_is_still_a_notice() -> None:
    assert ids(run(in_transaction("ALTER INDEX ix SET TABLESPACE fast;"))) == ["unknown-statement"]


# --- REINDEX (CONCURRENTLY), DETACH ... FINALIZE, VACUUM (FULL, ... off) --------------------


@pytest.mark.parametrize(
    "sql", ["REINDEX (CONCURRENTLY) INDEX ix;", "REINDEX (VERBOSE, CONCURRENTLY) TABLE t;"]
)
def test_reindex_concurrently_in_the_option_list_is_concurrent(sql: str) -> None:
    assert run(sql, "reindex-non-concurrently") == []
    assert ids(run(in_transaction(sql), "concurrently-in-transaction")) == [
        "concurrently-in-transaction"
    ]


@pytest.mark.parametrize(
    "sql", ["REINDEX (VERBOSE) INDEX ix;", "REINDEX (CONCURRENTLY false, VERBOSE) TABLE t;"]
)
def test_reindex_with_other_options_is_not_concurrent(sql: str) -> None:
    assert ids(run(sql, "reindex-non-concurrently")) == ["reindex-non-concurrently"]


def test_detach_finalize_takes_no_access_exclusive_lock() -> None:
    sql = "ALTER TABLE p DETACH PARTITION p1 FINALIZE;"
    assert run(in_transaction(sql), "require-concurrent-partition-detach") == []
    plain = "ALTER TABLE p DETACH PARTITION p1;"
    assert ids(run(in_transaction(plain), "require-concurrent-partition-detach")) == [
        "require-concurrent-partition-detach"
    ]


@pytest.mark.parametrize(
    ("sql", "full"),
    [
        ("VACUUM (FULL, VERBOSE off) t;", True),
        ("VACUUM (VERBOSE false, FULL) t;", True),
        ("VACUUM (FULL true) t;", True),
        ("VACUUM (FULL off, VERBOSE) t;", False),
        ("VACUUM (FULL 0) t;", False),
        ("VACUUM (VERBOSE, ANALYZE) t;", False),
    ],
)
def test_an_options_own_false_turns_off_only_that_option(sql: str, full: bool) -> None:
    assert ids(run(sql, "vacuum-full")) == (["vacuum-full"] if full else [])


# --- RESET ALL -----------------------------------------------------------------------------


@pytest.mark.parametrize("reset", ["RESET ALL;", "DISCARD ALL;"])
def test_reset_all_unsets_both_timeouts(reset: str) -> None:
    sql = f"{TIMEOUTS}{reset}\nALTER TABLE users ADD COLUMN a int;"
    assert ids(run(sql, "missing-lock-timeout", "missing-statement-timeout")) == [
        "missing-lock-timeout",
        "missing-statement-timeout",
    ]


@pytest.mark.parametrize(
    ("reset", "missing"),
    [
        ("RESET lock_timeout;", ["missing-lock-timeout"]),
        ("RESET statement_timeout;", ["missing-statement-timeout"]),
        ("RESET search_path;", []),
    ],
)
def test_reset_of_one_setting_unsets_only_that_one(reset: str, missing: list[str]) -> None:
    sql = f"{TIMEOUTS}{reset}\nALTER TABLE users ADD COLUMN a int;"
    assert ids(run(sql, "missing-lock-timeout", "missing-statement-timeout")) == missing


def test_reset_all_also_ends_set_local() -> None:
    sql = "BEGIN;\nSET LOCAL lock_timeout = '5s';\nRESET ALL;\nALTER TABLE users ADD COLUMN a int;"
    assert ids(run(sql, "missing-lock-timeout")) == ["missing-lock-timeout"]


# --- DROP DOMAIN ---------------------------------------------------------------------------


def test_drop_domain_is_judged_as_a_dropped_type() -> None:
    [found] = run(in_transaction("DROP DOMAIN IF EXISTS email CASCADE;"))
    assert found.rule == "drop-type"
    assert found.message.startswith("DROP DOMAIN email CASCADE")
    assert "DROP DOMAIN email;" in (found.advice or "")


def test_drop_of_a_domain_created_in_the_stream_is_fine() -> None:
    sql = in_transaction(
        "CREATE DOMAIN email AS text CHECK (VALUE LIKE '%@%');\nDROP DOMAIN email;"
    )
    assert run(sql) == []
