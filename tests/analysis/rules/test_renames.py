"""rename-column, rename-table."""

from __future__ import annotations

from .helpers import ids, in_transaction, run


def test_rename_column_of_an_existing_table_is_a_warning() -> None:
    findings = run(in_transaction("ALTER TABLE users RENAME COLUMN name TO full_name;"))
    assert ids(findings) == ["rename-column"]
    assert findings[0].severity.value == "warning"
    assert "users.name" in findings[0].message and "full_name" in findings[0].message


def test_rename_column_as_alembic_spells_it() -> None:
    findings = run(in_transaction("ALTER TABLE users RENAME name TO full_name;"))
    assert ids(findings) == ["rename-column"]


def test_rename_column_of_a_new_table_or_column_is_fine() -> None:
    sql = (
        "CREATE TABLE t (a int);\nALTER TABLE t RENAME COLUMN a TO b;\n"
        "ALTER TABLE users ADD COLUMN tmp int;\nALTER TABLE users RENAME COLUMN tmp TO kept;"
    )
    assert run(in_transaction(sql), "rename-column") == []


def test_rename_table_of_an_existing_table_suggests_a_view() -> None:
    findings = run(in_transaction("ALTER TABLE users RENAME TO accounts;"))
    assert ids(findings) == ["rename-table"]
    assert "CREATE VIEW users AS SELECT * FROM accounts;" in (findings[0].advice or "")


def test_rename_of_a_new_table_is_fine_and_it_stays_new() -> None:
    sql = (
        "CREATE TABLE t (a int);\nALTER TABLE t RENAME TO u;\n"
        "ALTER TABLE u ADD COLUMN b int NOT NULL;"
    )
    assert run(in_transaction(sql)) == []


def test_rename_column_advice_names_the_columns_and_reads_the_type() -> None:
    findings = run(in_transaction("ALTER TABLE users RENAME COLUMN name TO full_name;"))
    advice = next(f.advice for f in findings if f.rule == "rename-column") or ""
    assert "<" not in advice
    assert "ALTER TABLE users ADD COLUMN full_name %s NULL" in advice
    assert "attrelid = 'users'::regclass AND attname = 'name'" in advice
