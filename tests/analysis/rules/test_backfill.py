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
