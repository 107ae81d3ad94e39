"""drop-table, drop-column, drop-index, alter-column-type, truncate-table."""

from __future__ import annotations

import pytest

from bot.analysis.model import Family, Severity
from bot.analysis.registry import INFOS as RULE_INFOS

from .helpers import ids, in_transaction, run


def test_destructive_rules_are_errors_of_the_destructive_family() -> None:
    for rule in ("drop-table", "drop-column", "drop-index", "alter-column-type", "truncate-table"):
        assert RULE_INFOS[rule].family is Family.DESTRUCTIVE
        assert RULE_INFOS[rule].default_severity is Severity.ERROR


def test_drop_table_of_an_existing_table_is_reported() -> None:
    findings = run(in_transaction("DROP TABLE users;"), "drop-table")
    assert ids(findings) == ["drop-table"]
    assert "users" in findings[0].message
    assert findings[0].statement == "DROP TABLE users"
    assert (findings[0].path, findings[0].line, findings[0].revision) == ("m.py", 4, "r1")
    assert findings[0].phase == "upgrade" and findings[0].source == "sql"


def test_drop_table_reports_each_existing_table_of_the_statement() -> None:
    findings = run(in_transaction("DROP TABLE users, orders;"), "drop-table")
    assert sorted(f.message.split()[2] for f in findings) == ["orders", "users"]


def test_drop_table_created_in_the_same_stream_is_not_destructive() -> None:
    sql = "CREATE TABLE scratch (id int);\nDROP TABLE scratch;"
    assert run(in_transaction(sql), "drop-table") == []


def test_drop_column_of_an_existing_column_is_reported() -> None:
    findings = run(in_transaction("ALTER TABLE users DROP COLUMN email;"), "drop-column")
    assert ids(findings) == ["drop-column"]
    assert "users.email" in findings[0].message
    assert "ALTER TABLE users DROP COLUMN email;" in (findings[0].advice or "")


def test_drop_column_added_in_the_same_stream_is_not_destructive() -> None:
    sql = "ALTER TABLE users ADD COLUMN tmp int;\nALTER TABLE users DROP COLUMN tmp;"
    assert run(in_transaction(sql), "drop-column") == []


def test_drop_column_of_a_new_table_is_not_destructive() -> None:
    sql = "CREATE TABLE t (a int, b int);\nALTER TABLE t DROP COLUMN b;"
    assert run(in_transaction(sql), "drop-column") == []


def test_drop_index_of_an_existing_index_is_reported() -> None:
    findings = run(in_transaction("DROP INDEX ix_users_email;"), "drop-index")
    assert ids(findings) == ["drop-index"]
    assert "ix_users_email" in findings[0].message


def test_drop_index_created_in_the_same_stream_is_not_destructive() -> None:
    sql = "CREATE INDEX ix_tmp ON users (email);\nDROP INDEX ix_tmp;"
    assert run(in_transaction(sql), "drop-index") == []


def test_alter_column_type_on_an_existing_table_is_reported_with_the_swap_pattern() -> None:
    sql = "ALTER TABLE users ALTER COLUMN age TYPE bigint;"
    findings = run(in_transaction(sql), "alter-column-type")
    assert ids(findings) == ["alter-column-type"]
    assert "users.age" in findings[0].message
    assert "rewrite" in findings[0].message and "lose data" in findings[0].message
    advice = findings[0].advice or ""
    assert "ALTER TABLE users ADD COLUMN age_new BIGINT NULL;" in advice
    assert "RENAME COLUMN age_new TO age" in advice


def test_alter_column_type_on_a_new_table_is_not_reported() -> None:
    sql = "CREATE TABLE t (a int);\nALTER TABLE t ALTER COLUMN a TYPE bigint;"
    assert run(in_transaction(sql), "alter-column-type") == []


def test_truncate_of_an_existing_table_is_reported() -> None:
    findings = run(in_transaction("TRUNCATE audit_log CASCADE;"), "truncate-table")
    assert ids(findings) == ["truncate-table"]
    assert "audit_log" in findings[0].message and "CASCADE" in findings[0].message


def test_truncate_of_a_new_table_is_not_reported() -> None:
    sql = "CREATE TABLE staging_rows (id int);\nTRUNCATE staging_rows;"
    assert run(in_transaction(sql), "truncate-table") == []


REBUILD = (
    "COMMIT;\nDROP INDEX CONCURRENTLY IF EXISTS ix_users_email;\n"
    "CREATE INDEX CONCURRENTLY ix_users_email ON users (email);\nBEGIN;"
)


def test_drop_then_create_of_the_same_index_is_a_rebuild_not_a_drop() -> None:
    assert run(in_transaction(REBUILD), "drop-index") == []


def test_a_rebuild_is_recognised_across_schemas_and_set_statements() -> None:
    sql = (
        "DROP INDEX CONCURRENTLY IF EXISTS app.ix_users_email;\nSET lock_timeout = '5s';\n"
        "CREATE INDEX CONCURRENTLY ix_users_email ON app.users (email);"
    )
    assert run(sql, "drop-index") == []


def test_drop_index_with_no_re_create_is_still_a_drop() -> None:
    sql = "DROP INDEX CONCURRENTLY IF EXISTS ix_users_email;\nCOMMIT;"
    assert ids(run(sql, "drop-index")) == ["drop-index"]


@pytest.mark.parametrize(
    "after",
    [
        "CREATE INDEX CONCURRENTLY ix_users_name ON users (name);",  # another name
        "CREATE INDEX CONCURRENTLY ix_users_email ON billing.users (email);",  # another schema
        "UPDATE users SET email = lower(email);\n"  # not directly after
        "CREATE INDEX CONCURRENTLY ix_users_email ON users (email);",
    ],
)
def test_drop_index_followed_by_something_else_is_still_a_drop(after: str) -> None:
    sql = f"DROP INDEX CONCURRENTLY IF EXISTS ix_users_email;\n{after}"
    assert ids(run(sql, "drop-index")) == ["drop-index"]


@pytest.mark.parametrize(
    ("new_type", "source"),
    [
        ("text", "varchar or text"),
        ("varchar(255)", "varchar(n) with n ≤ 255"),
        ("character varying", "varchar(n) or text"),
        ("numeric(12, 2)", "numeric(p, 2) with p ≤ 12"),
        ("numeric", "numeric(p, s)"),
    ],
)
def test_a_possibly_binary_compatible_change_does_not_claim_a_rewrite(
    new_type: str, source: str
) -> None:
    sql = f"ALTER TABLE users ALTER COLUMN name TYPE {new_type};"
    [found] = run(in_transaction(sql), "alter-column-type")
    assert f"if name is {source} this is binary-compatible (no table rewrite" in found.message
    assert "most type changes rewrite" not in found.message
    assert "format_type(atttypid, atttypmod)" in (found.advice or "")


def test_a_change_with_using_or_to_another_type_still_rewrites() -> None:
    sql = (
        "ALTER TABLE users ALTER COLUMN name TYPE text USING name || '';\n"
        "ALTER TABLE users ALTER COLUMN age TYPE int;"
    )
    findings = run(in_transaction(sql), "alter-column-type")
    assert ["most type changes rewrite" in f.message for f in findings] == [True, True]
