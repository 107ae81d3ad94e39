"""backfill-in-migration."""

from __future__ import annotations

from .helpers import TIMEOUTS, ids, in_transaction, run


def test_update_in_the_transaction_is_a_warning_noting_its_where_clause() -> None:
    sql = "UPDATE users SET plan = 'free' WHERE plan IS NULL;"
    findings = run(in_transaction(sql), "backfill-in-migration")
    assert ids(findings) == ["backfill-in-migration"]
    assert findings[0].severity.value == "warning"
    assert "WHERE clause" in findings[0].message
    assert "batches outside the DDL transaction" in (findings[0].advice or "")


def test_delete_without_where_says_every_row() -> None:
    findings = run(in_transaction("DELETE FROM sessions;"), "backfill-in-migration")
    assert ids(findings) == ["backfill-in-migration"]
    assert "every row (no WHERE)" in findings[0].message


def test_update_outside_a_transaction_is_not_this_rule() -> None:
    assert run(f"{TIMEOUTS}UPDATE users SET plan = 'free';", "backfill-in-migration") == []


def test_update_of_a_new_table_is_fine() -> None:
    sql = "CREATE TABLE t (a int);\nINSERT INTO t VALUES (1);\nUPDATE t SET a = 2;"
    assert run(in_transaction(sql), "backfill-in-migration") == []


def _batch_line(sql: str) -> str:
    findings = run(in_transaction(sql), "backfill-in-migration")
    return (findings[0].advice or "").splitlines()[1]


def test_the_batch_repeats_the_statements_own_assignments_and_condition() -> None:
    line = _batch_line("UPDATE orders SET status = 'open' WHERE status = 'new';")
    assert line.startswith(
        "UPDATE orders SET status = 'open' WHERE id IN "
        "(SELECT id FROM orders WHERE status = 'new' LIMIT 5000);"
    )
    assert "<" not in line


def test_without_a_where_the_batch_selects_the_rows_not_yet_done() -> None:
    line = _batch_line("UPDATE users SET email = lower(email), name = 'x';")
    assert "SET email = lower(email), name = 'x' WHERE id IN" in line
    assert "WHERE (email, name) IS DISTINCT FROM (lower(email), 'x') LIMIT 5000" in line
    assert _batch_line("DELETE FROM audit_log;").startswith(
        "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log LIMIT 5000);"
    )
