"""add-foreign-key-validated, add-check-constraint-validated, add-unique-constraint."""

from __future__ import annotations

from .helpers import ids, in_transaction, run


def test_foreign_key_without_not_valid_on_an_existing_table() -> None:
    sql = "ALTER TABLE orders ADD CONSTRAINT fk_user FOREIGN KEY (user_id) REFERENCES users (id);"
    findings = run(in_transaction(sql), "add-foreign-key-validated")
    assert ids(findings) == ["add-foreign-key-validated"]
    assert "orders" in findings[0].message and "users" in findings[0].message
    advice = findings[0].advice or ""
    assert (
        "ALTER TABLE orders ADD CONSTRAINT fk_user FOREIGN KEY (user_id) "
        "REFERENCES users (id) NOT VALID;" in advice
    )
    assert "ALTER TABLE orders VALIDATE CONSTRAINT fk_user;" in advice
    assert "postgresql_not_valid=True" in advice


def test_inline_references_on_add_column_is_a_validated_foreign_key() -> None:
    sql = "ALTER TABLE orders ADD COLUMN user_id bigint REFERENCES users (id);"
    assert ids(run(in_transaction(sql), "add-foreign-key-validated")) == [
        "add-foreign-key-validated"
    ]


def test_foreign_key_not_valid_is_fine() -> None:
    sql = (
        "ALTER TABLE orders ADD CONSTRAINT fk_user FOREIGN KEY (user_id) "
        "REFERENCES users (id) NOT VALID;\nALTER TABLE orders VALIDATE CONSTRAINT fk_user;"
    )
    assert run(in_transaction(sql), "add-foreign-key-validated") == []


def test_foreign_key_on_a_new_table_is_not_this_rule() -> None:
    sql = "CREATE TABLE orders (id bigint, user_id bigint REFERENCES users (id));"
    assert run(in_transaction(sql), "add-foreign-key-validated") == []


def test_check_constraint_without_not_valid_on_an_existing_table() -> None:
    sql = "ALTER TABLE orders ADD CONSTRAINT ck_total CHECK (total >= 0);"
    findings = run(in_transaction(sql), "add-check-constraint-validated")
    assert ids(findings) == ["add-check-constraint-validated"]
    advice = findings[0].advice or ""
    assert "ALTER TABLE orders ADD CONSTRAINT ck_total CHECK (total >= 0) NOT VALID;" in advice
    assert "ALTER TABLE orders VALIDATE CONSTRAINT ck_total;" in advice


def test_check_constraint_not_valid_or_on_a_new_table_is_fine() -> None:
    sql = (
        "ALTER TABLE orders ADD CONSTRAINT ck_total CHECK (total >= 0) NOT VALID;\n"
        "CREATE TABLE t (a int);\nALTER TABLE t ADD CONSTRAINT ck_a CHECK (a > 0);"
    )
    assert run(in_transaction(sql), "add-check-constraint-validated") == []


def test_unique_constraint_on_an_existing_table_suggests_a_concurrent_index() -> None:
    sql = "ALTER TABLE users ADD CONSTRAINT uq_users_email UNIQUE (email);"
    findings = run(in_transaction(sql), "add-unique-constraint")
    assert ids(findings) == ["add-unique-constraint"]
    advice = findings[0].advice or ""
    assert "CREATE UNIQUE INDEX CONCURRENTLY uq_users_email ON users (email);" in advice
    assert (
        "ALTER TABLE users ADD CONSTRAINT uq_users_email UNIQUE USING INDEX uq_users_email;"
        in advice
    )
    assert "with op.get_context().autocommit_block():" in advice


def test_primary_key_on_an_existing_table_is_the_same_problem() -> None:
    sql = "ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY (id);"
    findings = run(in_transaction(sql), "add-unique-constraint")
    assert ids(findings) == ["add-unique-constraint"]
    assert "PRIMARY KEY USING INDEX events_pkey" in (findings[0].advice or "")


def test_unique_using_index_or_on_a_new_table_is_fine() -> None:
    sql = (
        "ALTER TABLE users ADD CONSTRAINT uq_users_email UNIQUE USING INDEX uq_users_email;\n"
        "CREATE TABLE t (a int);\nALTER TABLE t ADD CONSTRAINT uq_t_a UNIQUE (a);"
    )
    assert run(in_transaction(sql), "add-unique-constraint") == []
