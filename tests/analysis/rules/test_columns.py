"""add-not-null-column, set-not-null, volatile-default."""

from __future__ import annotations

from .helpers import ids, in_transaction, revisions, run


def test_add_not_null_column_without_default_is_answered_with_the_checklist_pattern() -> None:
    sql = "ALTER TABLE attribution_events ADD COLUMN processing_status VARCHAR(20) NOT NULL;"
    findings = run(in_transaction(sql), "add-not-null-column")
    assert ids(findings) == ["add-not-null-column"]
    assert "attribution_events.processing_status" in findings[0].message
    advice = findings[0].advice or ""
    steps = [
        "ALTER TABLE attribution_events ADD COLUMN processing_status VARCHAR(20) NULL;",
        "UPDATE attribution_events SET processing_status = <value> "
        "WHERE processing_status IS NULL;",
        "ALTER TABLE attribution_events ALTER COLUMN processing_status SET NOT NULL;",
        "ALTER TABLE attribution_events ALTER COLUMN processing_status SET DEFAULT <value>;",
    ]
    positions = [advice.index(step) for step in steps]
    assert positions == sorted(positions)


def test_add_not_null_column_with_a_constant_default_is_fine() -> None:
    sql = "ALTER TABLE users ADD COLUMN active boolean NOT NULL DEFAULT true;"
    assert run(in_transaction(sql), "add-not-null-column") == []


def test_add_nullable_column_is_fine() -> None:
    assert (
        run(in_transaction("ALTER TABLE users ADD COLUMN note text;"), "add-not-null-column") == []
    )


def test_add_not_null_column_to_a_new_table_is_fine() -> None:
    sql = "CREATE TABLE t (id int);\nALTER TABLE t ADD COLUMN a int NOT NULL;"
    assert run(in_transaction(sql), "add-not-null-column") == []


def test_set_not_null_on_an_existing_table_is_a_warning_with_the_check_pattern() -> None:
    sql = "ALTER TABLE users ALTER COLUMN email SET NOT NULL;"
    findings = run(in_transaction(sql), "set-not-null")
    assert ids(findings) == ["set-not-null"]
    assert findings[0].severity.value == "warning"
    advice = findings[0].advice or ""
    assert "CHECK (email IS NOT NULL) NOT VALID" in advice
    assert "VALIDATE CONSTRAINT users_email_not_null" in advice


def test_set_not_null_after_a_validated_not_null_check_is_fine() -> None:
    sql = (
        "ALTER TABLE users ADD CONSTRAINT users_email_nn CHECK (email IS NOT NULL) NOT VALID;\n"
        "ALTER TABLE users VALIDATE CONSTRAINT users_email_nn;\n"
        "ALTER TABLE users ALTER COLUMN email SET NOT NULL;"
    )
    assert run(in_transaction(sql), "set-not-null") == []


def test_set_not_null_after_an_unvalidated_check_still_scans() -> None:
    sql = (
        "ALTER TABLE users ADD CONSTRAINT users_email_nn CHECK (email IS NOT NULL) NOT VALID;\n"
        "ALTER TABLE users ALTER COLUMN email SET NOT NULL;"
    )
    assert ids(run(in_transaction(sql), "set-not-null")) == ["set-not-null"]


def test_set_not_null_after_a_check_on_another_column_still_scans() -> None:
    sql = (
        "ALTER TABLE users ADD CONSTRAINT users_name_nn CHECK (name IS NOT NULL);\n"
        "ALTER TABLE users ALTER COLUMN email SET NOT NULL;"
    )
    assert ids(run(in_transaction(sql), "set-not-null")) == ["set-not-null"]


def test_set_not_null_on_a_new_table_is_fine() -> None:
    sql = "CREATE TABLE t (a int);\nALTER TABLE t ALTER COLUMN a SET NOT NULL;"
    assert run(in_transaction(sql), "set-not-null") == []


def test_volatile_default_rewrites_the_table() -> None:
    sql = "ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid();"
    findings = run(in_transaction(sql), "volatile-default")
    assert ids(findings) == ["volatile-default"]
    assert "users.token" in findings[0].message and "rewrites" in findings[0].message
    assert "ALTER TABLE users ADD COLUMN token UUID NULL;" in (findings[0].advice or "")


def test_generated_stored_column_rewrites_the_table() -> None:
    sql = "ALTER TABLE users ADD COLUMN total int GENERATED ALWAYS AS (a + b) STORED;"
    findings = run(in_transaction(sql), "volatile-default")
    assert ids(findings) == ["volatile-default"]
    assert "GENERATED" in findings[0].message


def test_serial_column_rewrites_the_table() -> None:
    findings = run(
        in_transaction("ALTER TABLE users ADD COLUMN seq bigserial;"), "volatile-default"
    )
    assert ids(findings) == ["volatile-default"]
    assert "nextval('users_seq_seq')" in (findings[0].advice or "")


def test_stable_and_constant_defaults_do_not_rewrite() -> None:
    sql = (
        "ALTER TABLE users ADD COLUMN created timestamptz DEFAULT now();\n"
        "ALTER TABLE users ADD COLUMN n int NOT NULL DEFAULT 0;"
    )
    assert run(in_transaction(sql), "volatile-default") == []


def test_volatile_default_on_a_new_table_is_fine() -> None:
    sql = "CREATE TABLE t (id int);\nALTER TABLE t ADD COLUMN token uuid DEFAULT gen_random_uuid();"
    assert run(in_transaction(sql), "volatile-default") == []


def test_an_identity_column_is_named_as_such_not_as_a_default_of_none() -> None:
    sql = "ALTER TABLE users ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;"
    findings = run(in_transaction(sql), "volatile-default")
    assert ids(findings) == ["volatile-default"]
    message, advice = findings[0].message, findings[0].advice or ""
    assert "users.seq is an identity column" in message
    assert "None" not in message and "None" not in advice and "<" not in advice
    assert "ALTER COLUMN seq ADD GENERATED BY DEFAULT AS IDENTITY" in advice


def test_a_volatile_default_is_still_named_by_its_expression() -> None:
    sql = "ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid();"
    findings = run(in_transaction(sql), "volatile-default")
    assert "has the volatile default GEN_RANDOM_UUID()" in findings[0].message
    assert "identity" not in findings[0].message


def test_a_user_defined_function_default_counts_as_volatile() -> None:
    # migsafe cannot see the function's volatility: it must assume a rewrite.
    sql = "ALTER TABLE users ADD COLUMN code text DEFAULT app.next_code();"
    findings = run(in_transaction(sql), "volatile-default")
    assert ids(findings) == ["volatile-default"]
    assert "users.code" in findings[0].message


def test_an_unlisted_volatile_builtin_counts_as_volatile() -> None:
    sql = "ALTER TABLE users ADD COLUMN salt bytea DEFAULT gen_random_bytes(16);"
    assert ids(run(in_transaction(sql), "volatile-default")) == ["volatile-default"]


def test_known_stable_and_immutable_builtins_do_not_rewrite() -> None:
    sql = (
        "ALTER TABLE users ADD COLUMN a text DEFAULT lower('X');\n"
        "ALTER TABLE users ADD COLUMN b timestamptz DEFAULT statement_timestamp();\n"
        "ALTER TABLE users ADD COLUMN c jsonb DEFAULT jsonb_build_object('k', 1);\n"
        "ALTER TABLE users ADD COLUMN d text DEFAULT current_setting('app.region');\n"
        "ALTER TABLE users ADD COLUMN e jsonb DEFAULT '{}'::jsonb;\n"
        "ALTER TABLE users ADD COLUMN f timestamp DEFAULT timezone('utc', now());"
    )
    assert run(in_transaction(sql), "volatile-default") == []


def test_a_volatile_call_nested_in_a_stable_one_still_rewrites() -> None:
    sql = "ALTER TABLE users ADD COLUMN t text DEFAULT md5(random()::text);"
    assert ids(run(in_transaction(sql), "volatile-default")) == ["volatile-default"]


def test_set_not_null_after_a_validated_inline_check_from_an_earlier_revision_is_fine() -> None:
    stream = revisions(
        ("r1", 'ALTER TABLE users ADD CONSTRAINT users_email_nn CHECK ("email" IS NOT NULL);'),
        ("r2", "ALTER TABLE users ALTER COLUMN email SET NOT NULL;"),
    )
    assert run(stream, "set-not-null") == []


def test_set_not_null_after_the_check_was_dropped_scans_again() -> None:
    sql = (
        "ALTER TABLE users ADD CONSTRAINT users_email_nn CHECK (email IS NOT NULL);\n"
        "ALTER TABLE users DROP CONSTRAINT users_email_nn;\n"
        "ALTER TABLE users ALTER COLUMN email SET NOT NULL;"
    )
    assert ids(run(in_transaction(sql), "set-not-null")) == ["set-not-null"]
