"""create-index-non-concurrently, drop-index-non-concurrently, concurrently-in-transaction."""

from __future__ import annotations

from .helpers import TIMEOUTS, ids, in_transaction, run


def test_create_index_on_an_existing_table_suggests_concurrently_in_an_autocommit_block() -> None:
    sql = "CREATE INDEX ix_users_email ON users (email);"
    findings = run(in_transaction(sql), "create-index-non-concurrently")
    assert ids(findings) == ["create-index-non-concurrently"]
    assert "ix_users_email" in findings[0].message and "users" in findings[0].message
    advice = findings[0].advice or ""
    assert "CREATE INDEX CONCURRENTLY ix_users_email ON users (email);" in advice
    assert "with op.get_context().autocommit_block():" in advice
    assert (
        'op.create_index("ix_users_email", "users", [\'email\'], postgresql_concurrently=True)'
        in advice
    )


def test_create_unique_index_advice_keeps_unique() -> None:
    findings = run(in_transaction("CREATE UNIQUE INDEX ux ON users (email);"))
    advice = next(f.advice for f in findings if f.rule == "create-index-non-concurrently") or ""
    assert "CREATE UNIQUE INDEX CONCURRENTLY ux ON users (email);" in advice
    assert "unique=True" in advice


def test_create_index_concurrently_is_fine() -> None:
    sql = f"{TIMEOUTS}CREATE INDEX CONCURRENTLY ix ON users (email);"
    assert run(sql, "create-index-non-concurrently") == []


def test_create_index_on_a_new_table_is_fine() -> None:
    sql = "CREATE TABLE t (a int);\nCREATE INDEX ix_t_a ON t (a);"
    assert run(in_transaction(sql), "create-index-non-concurrently") == []


def test_drop_index_of_an_existing_index_suggests_concurrently() -> None:
    findings = run(in_transaction("DROP INDEX ix_users_email;"), "drop-index-non-concurrently")
    assert ids(findings) == ["drop-index-non-concurrently"]
    assert findings[0].severity.value == "warning"
    advice = findings[0].advice or ""
    assert "DROP INDEX CONCURRENTLY IF EXISTS ix_users_email;" in advice
    assert "postgresql_concurrently=True" in advice


def test_drop_index_concurrently_or_of_a_new_index_is_fine() -> None:
    sql = f"{TIMEOUTS}DROP INDEX CONCURRENTLY ix_old;"
    assert run(sql, "drop-index-non-concurrently") == []
    sql = "CREATE INDEX ix_new ON users (a);\nDROP INDEX ix_new;"
    assert run(in_transaction(sql), "drop-index-non-concurrently") == []


def test_concurrently_inside_a_transaction_is_refused_by_postgresql() -> None:
    sql = "CREATE INDEX CONCURRENTLY ix_users_email ON users (email);"
    findings = run(in_transaction(sql), "concurrently-in-transaction")
    assert ids(findings) == ["concurrently-in-transaction"]
    assert "with op.get_context().autocommit_block():" in (findings[0].advice or "")


def test_drop_index_concurrently_inside_a_transaction_is_refused_too() -> None:
    findings = run(in_transaction("DROP INDEX CONCURRENTLY ix;"), "concurrently-in-transaction")
    assert ids(findings) == ["concurrently-in-transaction"]


def test_concurrently_in_an_autocommit_block_is_fine() -> None:
    # What Alembic emits for autocommit_block(): COMMIT before the body, BEGIN after it.
    sql = (
        f"BEGIN;\n{TIMEOUTS}COMMIT;\nCREATE INDEX CONCURRENTLY ix ON users (email);\n"
        "BEGIN;\nCOMMIT;"
    )
    assert run(sql) == []
