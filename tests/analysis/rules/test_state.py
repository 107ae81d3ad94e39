"""StreamState: what the stream has created and which timeouts are in effect."""

from __future__ import annotations

from bot.analysis.state import StreamState

from .helpers import statements


def walk(sql: str) -> StreamState:
    state = StreamState()
    for stmt in statements(sql):
        state.enter(stmt)
        state.apply(stmt)
    return state


def ms(state: StreamState, setting: str) -> float | None:
    timeout = state.timeout(setting)
    return None if timeout is None else timeout.ms


def test_session_set_persists_across_commit() -> None:
    state = walk("BEGIN;\nSET lock_timeout = '30s';\nCOMMIT;")
    assert ms(state, "lock_timeout") == 30_000
    assert not state.in_transaction


def test_set_local_lasts_until_commit_and_then_the_session_value_returns() -> None:
    state = walk("SET lock_timeout = '5s';\nBEGIN;\nSET LOCAL lock_timeout = '20s';")
    assert state.in_transaction and ms(state, "lock_timeout") == 20_000
    for stmt in statements("COMMIT;"):
        state.apply(stmt)
    assert ms(state, "lock_timeout") == 5_000


def test_rollback_also_ends_set_local() -> None:
    state = walk("BEGIN;\nSET LOCAL statement_timeout = '1min';\nROLLBACK;")
    assert state.timeout("statement_timeout") is None and not state.in_transaction


def test_set_local_outside_a_transaction_has_no_effect() -> None:
    assert walk("SET LOCAL lock_timeout = '30s';").timeout("lock_timeout") is None


def test_reset_and_default_clear_the_setting() -> None:
    assert walk("SET lock_timeout = '30s';\nRESET lock_timeout;").timeout("lock_timeout") is None
    state = walk("SET statement_timeout = '5min';\nSET statement_timeout TO DEFAULT;")
    assert state.timeout("statement_timeout") is None


def test_values_are_read_in_postgresql_units() -> None:
    state = walk("SET lock_timeout = 1500;\nSET statement_timeout TO '2min';")
    assert ms(state, "lock_timeout") == 1_500
    assert ms(state, "statement_timeout") == 120_000


def test_tables_created_in_the_stream_are_not_existing() -> None:
    state = walk('CREATE TABLE public.things (id int);\nCREATE TABLE "Mixed" (id int);')
    assert not state.is_existing_table("things")
    assert not state.is_existing_table("public.things")
    assert not state.is_existing_table('"Mixed"') and not state.is_existing_table("Mixed")
    assert state.is_existing_table("users")


def test_a_renamed_new_table_stays_new_and_a_dropped_one_is_forgotten() -> None:
    state = walk("CREATE TABLE a (id int);\nALTER TABLE a RENAME TO b;\nDROP TABLE a;")
    assert not state.is_existing_table("b")
    assert state.is_existing_table("a")


def test_columns_and_indexes_created_in_the_stream_are_new() -> None:
    state = walk("ALTER TABLE users ADD COLUMN nick text;\nCREATE INDEX ix_nick ON users (nick);")
    assert state.is_new_column("users", "nick") and not state.is_new_column("users", "email")
    assert state.is_new_index("ix_nick") and state.is_new_index("public.ix_nick")
    assert state.index_table("ix_nick") == "users"
    assert not state.is_new_index("ix_other")


def test_not_null_check_counts_once_validated() -> None:
    state = walk("ALTER TABLE users ADD CONSTRAINT nn CHECK (email IS NOT NULL) NOT VALID;")
    assert not state.has_validated_not_null_check("users", "email")
    for stmt in statements("ALTER TABLE users VALIDATE CONSTRAINT nn;"):
        state.apply(stmt)
    assert state.has_validated_not_null_check("users", "email")
    for stmt in statements("ALTER TABLE users DROP CONSTRAINT nn;"):
        state.apply(stmt)
    assert not state.has_validated_not_null_check("users", "email")


def test_functions_created_and_types_renamed_are_read_from_their_sql() -> None:
    state = walk(
        "CREATE OR REPLACE FUNCTION App.Audit_Row() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN RETURN NEW; END $$;\n"
        "CREATE PROCEDURE public.archive() LANGUAGE sql AS $$ SELECT 1 $$;\n"
        'ALTER TYPE app."Status" RENAME TO status_old;\n'
        "CREATE TYPE app.\"Status\" AS ENUM ('a');"
    )
    assert state.is_new_object("function", "app.audit_row")
    assert state.is_new_object("function", "archive")
    assert not state.is_new_object("function", "audit_row")  # another schema's
    assert state.renamed_types == {"app.status_old": "app.Status"}
    assert state.is_swapped_type("app.status_old")
    assert not state.is_swapped_type("status_old")


def test_a_renamed_type_without_a_new_one_of_its_old_name_is_no_swap() -> None:
    state = walk(
        "ALTER TYPE status RENAME TO status_old;\nALTER TYPE mood RENAME VALUE 'a' TO 'b';"
    )
    assert state.renamed_types == {"status_old": "status"}
    assert not state.is_swapped_type("status_old")
