"""bot.analysis.parse: what each statement shape turns into, and how SQL text is split."""

from __future__ import annotations

import pytest

from bot.analysis.model import Action, ActionKind, Statement
from bot.analysis.parse import classify, parse_statements, split_sql

K = ActionKind

# (sql, the exact actions expected). Every Action field is compared.
CASES: list[tuple[str, list[Action]]] = [
    # --- Alembic's offline spellings ------------------------------------------------------
    (
        "ALTER TABLE users ADD COLUMN email VARCHAR(255) NOT NULL",
        [
            Action(
                K.ADD_COLUMN, table="users", column="email", data_type="VARCHAR(255)", not_null=True
            )
        ],
    ),
    (
        "ALTER TABLE users DROP COLUMN email",
        [Action(K.DROP_COLUMN, table="users", column="email")],
    ),
    (
        "ALTER TABLE users ALTER COLUMN age TYPE BIGINT",
        [Action(K.ALTER_COLUMN_TYPE, table="users", column="age", data_type="BIGINT")],
    ),
    (
        "ALTER TABLE users ALTER COLUMN email SET NOT NULL",
        [Action(K.SET_NOT_NULL, table="users", column="email")],
    ),
    (
        "ALTER TABLE users RENAME email TO email_address",
        [Action(K.RENAME_COLUMN, table="users", column="email", name="email_address")],
    ),
    (
        "CREATE INDEX ix_users_email ON users (email)",
        [Action(K.CREATE_INDEX, table="users", name="ix_users_email", columns=("email",))],
    ),
    (
        "CREATE INDEX CONCURRENTLY ix ON users (email)",
        [Action(K.CREATE_INDEX, table="users", name="ix", columns=("email",), concurrently=True)],
    ),
    ("DROP INDEX ix_users_email", [Action(K.DROP_INDEX, name="ix_users_email")]),
    (
        "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY(user_id) REFERENCES users (id)",
        [
            Action(
                K.ADD_CONSTRAINT,
                table="orders",
                name="fk",
                columns=("user_id",),
                constraint_type="foreign_key",
                references="users",
            )
        ],
    ),
    (
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
        "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))",
        [
            Action(K.CREATE_TABLE, table="alembic_version"),
            Action(
                K.ADD_COLUMN,
                table="alembic_version",
                column="version_num",
                data_type="VARCHAR(32)",
                not_null=True,
            ),
            Action(
                K.ADD_CONSTRAINT,
                table="alembic_version",
                name="alembic_version_pkc",
                columns=("version_num",),
                constraint_type="primary_key",
            ),
        ],
    ),
    (
        "UPDATE alembic_version SET version_num='abc' WHERE alembic_version.version_num = 'def'",
        [Action(K.UPDATE, table="alembic_version", has_where=True)],
    ),
    (
        "INSERT INTO alembic_version (version_num) VALUES ('abc')",
        [Action(K.INSERT, table="alembic_version")],
    ),
    (
        "INSERT INTO alembic_version (version_num) VALUES ('0001') "
        "RETURNING alembic_version.version_num",
        [Action(K.INSERT, table="alembic_version")],
    ),
    (
        "DELETE FROM alembic_version WHERE alembic_version.version_num = 'abc'",
        [Action(K.DELETE, table="alembic_version", has_where=True)],
    ),
    ("DROP TABLE alembic_version", [Action(K.DROP_TABLE, table="alembic_version")]),
    # Copied from `alembic upgrade --sql` output (multi-line, trailing spaces).
    (
        "CREATE TABLE orders (\n    id BIGSERIAL NOT NULL, \n    user_id INTEGER, \n"
        "    PRIMARY KEY (id), \n    FOREIGN KEY(user_id) REFERENCES users (id)\n)",
        [
            Action(K.CREATE_TABLE, table="orders"),
            Action(
                K.ADD_COLUMN,
                table="orders",
                column="id",
                data_type="BIGSERIAL",
                not_null=True,
                default_volatile=True,
            ),
            Action(K.ADD_COLUMN, table="orders", column="user_id", data_type="INT"),
            Action(
                K.ADD_CONSTRAINT, table="orders", columns=("id",), constraint_type="primary_key"
            ),
            Action(
                K.ADD_CONSTRAINT,
                table="orders",
                columns=("user_id",),
                constraint_type="foreign_key",
                references="users",
            ),
        ],
    ),
    (
        "ALTER TABLE public.s ADD FOREIGN KEY(x) REFERENCES users (id)",
        [
            Action(
                K.ADD_CONSTRAINT,
                table="public.s",
                columns=("x",),
                constraint_type="foreign_key",
                references="users",
            )
        ],
    ),
    (
        "ALTER TABLE users ALTER COLUMN name TYPE BIGINT USING name::bigint",
        [
            Action(
                K.ALTER_COLUMN_TYPE,
                table="users",
                column="name",
                data_type="BIGINT",
                using="CAST(name AS BIGINT)",
            )
        ],
    ),
    (
        "ALTER TABLE users ADD COLUMN created TIMESTAMP WITH TIME ZONE DEFAULT now()",
        [
            Action(
                K.ADD_COLUMN,
                table="users",
                column="created",
                data_type="TIMESTAMPTZ",
                default="CURRENT_TIMESTAMP",
            )
        ],
    ),
    # --- names ------------------------------------------------------------------------------
    (
        'ALTER TABLE "Users" ADD COLUMN "Email" TEXT',
        [Action(K.ADD_COLUMN, table="Users", column="Email", data_type="TEXT")],
    ),
    (
        "ALTER TABLE Public.Users ADD COLUMN Email TEXT",
        [Action(K.ADD_COLUMN, table="public.users", column="email", data_type="TEXT")],
    ),
    # --- ALTER TABLE clauses --------------------------------------------------------------
    (
        "ALTER TABLE users ALTER COLUMN age TYPE BIGINT USING age::bigint, "
        "ALTER COLUMN x SET NOT NULL, DROP COLUMN IF EXISTS y CASCADE",
        [
            Action(
                K.ALTER_COLUMN_TYPE,
                table="users",
                column="age",
                data_type="BIGINT",
                using="CAST(age AS BIGINT)",
            ),
            Action(K.SET_NOT_NULL, table="users", column="x"),
            Action(K.DROP_COLUMN, table="users", column="y", if_exists=True, cascade=True),
        ],
    ),
    (
        "ALTER TABLE t ALTER COLUMN a DROP NOT NULL, ALTER COLUMN b SET DEFAULT 'x', "
        "ALTER COLUMN c DROP DEFAULT",
        [
            Action(K.DROP_NOT_NULL, table="t", column="a"),
            Action(K.SET_DEFAULT, table="t", column="b", default="'x'"),
            Action(K.DROP_DEFAULT, table="t", column="c"),
        ],
    ),
    (
        "ALTER TABLE t ALTER COLUMN a SET DATA TYPE VARCHAR(10)",
        [Action(K.ALTER_COLUMN_TYPE, table="t", column="a", data_type="VARCHAR(10)")],
    ),
    (
        "ALTER TABLE users RENAME COLUMN email TO mail",
        [Action(K.RENAME_COLUMN, table="users", column="email", name="mail")],
    ),
    ("ALTER TABLE users RENAME TO people", [Action(K.RENAME_TABLE, table="users", name="people")]),
    # --- ADD COLUMN details -----------------------------------------------------------------
    (
        "ALTER TABLE t ADD COLUMN a INT NULL",
        [Action(K.ADD_COLUMN, table="t", column="a", data_type="INT")],
    ),
    (
        "ALTER TABLE t ADD COLUMN id BIGSERIAL PRIMARY KEY",
        [
            Action(
                K.ADD_COLUMN,
                table="t",
                column="id",
                data_type="BIGSERIAL",
                not_null=True,
                default_volatile=True,
            ),
            Action(
                K.ADD_CONSTRAINT,
                table="t",
                column="id",
                columns=("id",),
                constraint_type="primary_key",
            ),
        ],
    ),
    (
        "ALTER TABLE t ADD COLUMN IF NOT EXISTS u UUID DEFAULT gen_random_uuid() NOT NULL",
        [
            Action(
                K.ADD_COLUMN,
                table="t",
                column="u",
                data_type="UUID",
                not_null=True,
                default="GEN_RANDOM_UUID()",
                default_volatile=True,
                if_exists=True,
            )
        ],
    ),
    (
        "ALTER TABLE t ADD COLUMN g INT GENERATED ALWAYS AS (a + 1) STORED",
        [Action(K.ADD_COLUMN, table="t", column="g", data_type="INT", generated_stored=True)],
    ),
    (
        "ALTER TABLE t ADD COLUMN c INT CONSTRAINT fk_c REFERENCES u (id) UNIQUE CHECK (c > 0)",
        [
            Action(K.ADD_COLUMN, table="t", column="c", data_type="INT"),
            Action(
                K.ADD_CONSTRAINT,
                table="t",
                column="c",
                name="fk_c",
                columns=("c",),
                constraint_type="foreign_key",
                references="u",
            ),
            Action(
                K.ADD_CONSTRAINT, table="t", column="c", columns=("c",), constraint_type="unique"
            ),
            Action(
                K.ADD_CONSTRAINT, table="t", column="c", columns=("c",), constraint_type="check"
            ),
        ],
    ),
    # --- constraints ----------------------------------------------------------------------
    (
        "ALTER TABLE t ADD CONSTRAINT ck CHECK (x > 0) NOT VALID",
        [Action(K.ADD_CONSTRAINT, table="t", name="ck", constraint_type="check", not_valid=True)],
    ),
    (
        "ALTER TABLE t ADD CONSTRAINT uq UNIQUE (a, b)",
        [
            Action(
                K.ADD_CONSTRAINT, table="t", name="uq", columns=("a", "b"), constraint_type="unique"
            )
        ],
    ),
    (
        "ALTER TABLE t ADD CONSTRAINT pk PRIMARY KEY (id)",
        [
            Action(
                K.ADD_CONSTRAINT,
                table="t",
                name="pk",
                columns=("id",),
                constraint_type="primary_key",
            )
        ],
    ),
    (
        "ALTER TABLE t ADD CONSTRAINT ex EXCLUDE USING gist (a WITH =)",
        [Action(K.ADD_CONSTRAINT, table="t", name="ex", constraint_type="exclude")],
    ),
    (  # sqlglot keeps NOT VALID on the statement: it belongs to the last clause only
        "ALTER TABLE t ADD CONSTRAINT b CHECK (x > 0), "
        "ADD CONSTRAINT a FOREIGN KEY (x) REFERENCES u (id) NOT VALID",
        [
            Action(K.ADD_CONSTRAINT, table="t", name="b", constraint_type="check"),
            Action(
                K.ADD_CONSTRAINT,
                table="t",
                name="a",
                columns=("x",),
                constraint_type="foreign_key",
                references="u",
                not_valid=True,
            ),
        ],
    ),
    (
        "ALTER TABLE t DROP CONSTRAINT IF EXISTS fk CASCADE",
        [Action(K.DROP_CONSTRAINT, table="t", name="fk", if_exists=True, cascade=True)],
    ),
    # --- Command fallbacks ----------------------------------------------------------------
    (
        "ALTER TABLE t ADD CONSTRAINT uq UNIQUE USING INDEX ix_uq",
        [
            Action(
                K.ADD_CONSTRAINT, table="t", name="uq", constraint_type="unique", using_index=True
            )
        ],
    ),
    (
        "ALTER TABLE t ADD PRIMARY KEY USING INDEX ix_pk",
        [
            Action(
                K.ADD_CONSTRAINT,
                table="t",
                name="ix_pk",
                constraint_type="primary_key",
                using_index=True,
            )
        ],
    ),
    (
        "ALTER TABLE t VALIDATE CONSTRAINT fk",
        [Action(K.VALIDATE_CONSTRAINT, table="t", name="fk")],
    ),
    ("ALTER TABLE t ENABLE ROW LEVEL SECURITY", [Action(K.ENABLE_RLS, table="t")]),
    ("ALTER TABLE t DISABLE ROW LEVEL SECURITY", [Action(K.DISABLE_RLS, table="t")]),
    ("ALTER TABLE t FORCE ROW LEVEL SECURITY", [Action(K.FORCE_RLS, table="t")]),
    ("ALTER TABLE t NO FORCE ROW LEVEL SECURITY", [Action(K.NO_FORCE_RLS, table="t")]),
    (  # a Command ALTER TABLE with other clauses: each clause still classified
        "ALTER TABLE t DISABLE ROW LEVEL SECURITY, ADD COLUMN x INT NOT NULL",
        [
            Action(K.DISABLE_RLS, table="t"),
            Action(K.ADD_COLUMN, table="t", column="x", data_type="INT", not_null=True),
        ],
    ),
    (
        "CREATE POLICY p ON orders USING (tenant_id = current_setting('app.tenant')::int)",
        [Action(K.CREATE_POLICY, table="orders", name="p")],
    ),
    (
        "DROP POLICY IF EXISTS p ON s.orders",
        [Action(K.DROP_POLICY, table="s.orders", name="p", if_exists=True)],
    ),
    (
        "ALTER POLICY p ON orders USING (true)",
        [Action(K.ALTER_POLICY, table="orders", name="p")],
    ),
    (
        "ALTER TYPE mood ADD VALUE IF NOT EXISTS 'happy' AFTER 'sad'",
        [Action(K.ALTER_TYPE_ADD_VALUE, name="mood", value="happy")],
    ),
    (
        "CREATE EXTENSION IF NOT EXISTS pgcrypto",
        [Action(K.CREATE_EXTENSION, name="pgcrypto", if_exists=True)],
    ),
    (
        "REINDEX INDEX CONCURRENTLY ix",
        [Action(K.REINDEX, name="ix", concurrently=True, detail="INDEX")],
    ),
    ("REINDEX TABLE orders", [Action(K.REINDEX, table="orders")]),
    ("VACUUM FULL orders", [Action(K.VACUUM_FULL, table="orders", tables=("orders",))]),
    ("VACUUM (FULL, VERBOSE) a, b", [Action(K.VACUUM_FULL, table="a", tables=("a", "b"))]),
    ("VACUUM orders", [Action(K.VACUUM, table="orders", tables=("orders",))]),
    ("VACUUM (ANALYZE)", [Action(K.VACUUM)]),
    (
        "ALTER DOMAIN positive ADD CONSTRAINT p CHECK (VALUE > 0) NOT VALID",
        [Action(K.ALTER_DOMAIN, name="positive", detail="ADD CONSTRAINT", not_valid=True)],
    ),
    ("ALTER DOMAIN d SET NOT NULL", [Action(K.ALTER_DOMAIN, name="d", detail="SET NOT NULL")]),
    (
        "DROP TRIGGER IF EXISTS audit ON app.orders CASCADE",
        [Action(K.DROP_TRIGGER, table="app.orders", name="audit", if_exists=True, cascade=True)],
    ),
    (
        "ALTER TABLE events ATTACH PARTITION events_2026 FOR VALUES FROM (1) TO (2)",
        [Action(K.ATTACH_PARTITION, table="events", name="events_2026")],
    ),
    (
        "ALTER TABLE events DETACH PARTITION events_2020 CONCURRENTLY",
        [Action(K.DETACH_PARTITION, table="events", name="events_2020", concurrently=True)],
    ),
    (
        "ALTER TABLE events DETACH PARTITION events_2020 FINALIZE",
        [Action(K.DETACH_PARTITION, table="events", name="events_2020", detail="FINALIZE")],
    ),
    (
        "REINDEX (TABLESPACE fast, CONCURRENTLY) INDEX ix",
        [Action(K.REINDEX, name="ix", concurrently=True, detail="INDEX")],
    ),
    (
        "REINDEX (CONCURRENTLY off) TABLE t",
        [Action(K.REINDEX, table="t")],
    ),
    (
        "VACUUM (FULL, VERBOSE off, PARALLEL 4) a, b",
        [Action(K.VACUUM_FULL, table="a", tables=("a", "b"))],
    ),
    ("VACUUM (FULL 'off') a", [Action(K.VACUUM, table="a", tables=("a",))]),
    ("ALTER TABLE t SET LOGGED", [Action(K.SET_LOGGED, table="t")]),
    ("ALTER TABLE t SET UNLOGGED", [Action(K.SET_UNLOGGED, table="t")]),
    ("REFRESH MATERIALIZED VIEW s.v", [Action(K.REFRESH_MATERIALIZED_VIEW, name="s.v")]),
    (
        "REFRESH MATERIALIZED VIEW CONCURRENTLY v WITH DATA",
        [Action(K.REFRESH_MATERIALIZED_VIEW, name="v", concurrently=True)],
    ),
    (
        "ALTER TYPE mood RENAME VALUE 'sad' TO 'blue'",
        [Action(K.RENAME_ENUM_VALUE, name="mood", value="sad", detail="blue")],
    ),
    (
        "DROP FUNCTION IF EXISTS f(int, text), g CASCADE",
        [
            Action(K.DROP_FUNCTION, name="f", if_exists=True, cascade=True, detail="FUNCTION"),
            Action(K.DROP_FUNCTION, name="g", if_exists=True, cascade=True, detail="FUNCTION"),
        ],
    ),
    (
        "CREATE MATERIALIZED VIEW IF NOT EXISTS mv AS SELECT 1 WITH NO DATA",
        [Action(K.CREATE_VIEW, name="mv", if_exists=True)],
    ),
    ("DROP PROCEDURE p", [Action(K.DROP_FUNCTION, name="p", detail="PROCEDURE")]),
    ("DROP EXTENSION postgis", [Action(K.DROP_EXTENSION, name="postgis")]),
    ("CLUSTER orders USING ix", [Action(K.CLUSTER, table="orders", name="ix")]),
    (
        "LOCK TABLE orders IN SHARE ROW EXCLUSIVE MODE",
        [Action(K.LOCK_TABLE, table="orders", tables=("orders",), detail="SHARE ROW EXCLUSIVE")],
    ),
    ("DO $$ BEGIN PERFORM 1; END $$", [Action(K.OTHER, detail="DO")]),
    (
        "CREATE OR REPLACE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql",
        [Action(K.OTHER, detail="CREATE FUNCTION")],
    ),
    # --- CREATE / DROP ----------------------------------------------------------------------
    (
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS ix ON public.users (lower(email), b)",
        [
            Action(
                K.CREATE_INDEX,
                table="public.users",
                name="ix",
                columns=("LOWER(email)", "b"),
                unique=True,
                concurrently=True,
                if_exists=True,
            )
        ],
    ),
    (
        "DROP INDEX CONCURRENTLY IF EXISTS ix CASCADE",
        [Action(K.DROP_INDEX, name="ix", concurrently=True, if_exists=True, cascade=True)],
    ),
    (  # sqlglot rejects several index names; the token fallback reads them
        "DROP INDEX a, public.b",
        [Action(K.DROP_INDEX, name="a"), Action(K.DROP_INDEX, name="public.b")],
    ),
    (
        "DROP TABLE IF EXISTS a, b CASCADE",
        [
            Action(K.DROP_TABLE, table="a", if_exists=True, cascade=True),
            Action(K.DROP_TABLE, table="b", if_exists=True, cascade=True),
        ],
    ),
    ("CREATE TABLE t2 AS SELECT * FROM t", [Action(K.CREATE_TABLE, table="t2")]),
    (
        "CREATE TABLE o (id SERIAL, user_id INT REFERENCES users (id))",
        [
            Action(K.CREATE_TABLE, table="o"),
            Action(K.ADD_COLUMN, table="o", column="id", data_type="SERIAL", default_volatile=True),
            Action(K.ADD_COLUMN, table="o", column="user_id", data_type="INT"),
            Action(
                K.ADD_CONSTRAINT,
                table="o",
                column="user_id",
                columns=("user_id",),
                constraint_type="foreign_key",
                references="users",
            ),
        ],
    ),
    ("CREATE TYPE mood AS ENUM ('a', 'b')", [Action(K.CREATE_TYPE, name="mood")]),
    ("DROP TYPE mood", [Action(K.DROP_TYPE, name="mood")]),
    (
        "DROP DOMAIN IF EXISTS s.d, e CASCADE",
        [
            Action(K.DROP_TYPE, name="s.d", if_exists=True, cascade=True, detail="DOMAIN"),
            Action(K.DROP_TYPE, name="e", if_exists=True, cascade=True, detail="DOMAIN"),
        ],
    ),
    (
        "CREATE DOMAIN s.d AS int CHECK (VALUE > 0)",
        [Action(K.CREATE_TYPE, name="s.d", detail="DOMAIN")],
    ),
    ("CREATE MATERIALIZED VIEW v AS SELECT 1", [Action(K.CREATE_VIEW, name="v")]),
    (
        "DROP MATERIALIZED VIEW IF EXISTS v",
        [Action(K.DROP_VIEW, name="v", if_exists=True, detail="MATERIALIZED")],
    ),
    ("CREATE OR REPLACE VIEW v AS SELECT 1", [Action(K.CREATE_VIEW, name="v")]),
    ("DROP VIEW v", [Action(K.DROP_VIEW, name="v")]),
    ("CREATE SEQUENCE s START 1", [Action(K.CREATE_SEQUENCE, name="s")]),
    ("DROP SEQUENCE s", [Action(K.DROP_SEQUENCE, name="s")]),
    ("DROP SCHEMA s CASCADE", [Action(K.DROP_SCHEMA, name="s", cascade=True)]),
    # --- DML, TRUNCATE ----------------------------------------------------------------------
    ("TRUNCATE TABLE a, b", [Action(K.TRUNCATE, table="a", tables=("a", "b"))]),
    ("TRUNCATE a CASCADE", [Action(K.TRUNCATE, table="a", tables=("a",), cascade=True)]),
    ("UPDATE users SET x = 1", [Action(K.UPDATE, table="users")]),
    ("DELETE FROM users", [Action(K.DELETE, table="users")]),
    ("SELECT 1", [Action(K.SELECT)]),
    ("COMMENT ON TABLE orders IS 'x'", [Action(K.COMMENT, table="orders")]),
    # --- settings and transactions ----------------------------------------------------------
    ("SET lock_timeout = '30s'", [Action(K.SET, setting="lock_timeout", value="30s")]),
    (
        "SET LOCAL statement_timeout TO '5min'",
        [Action(K.SET, setting="statement_timeout", value="5min", local=True)],
    ),
    ("SET SESSION Lock_Timeout = 3000", [Action(K.SET, setting="lock_timeout", value="3000")]),
    ("SET lock_timeout TO DEFAULT", [Action(K.SET, setting="lock_timeout")]),
    ("RESET lock_timeout", [Action(K.SET, setting="lock_timeout")]),
    ("SET TIME ZONE 'UTC'", [Action(K.SET, setting="timezone", value="UTC")]),
    ("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", [Action(K.OTHER, detail="SET TRANSACTION")]),
    (
        "SELECT set_config('lock_timeout', '30s', false)",
        [Action(K.SET, setting="lock_timeout", value="30s")],
    ),
    (
        "SELECT pg_catalog.set_config('statement_timeout', '5min', true)",
        [Action(K.SET, setting="statement_timeout", value="5min", local=True)],
    ),
    ("BEGIN", [Action(K.BEGIN)]),
    ("START TRANSACTION", [Action(K.BEGIN)]),
    ("COMMIT", [Action(K.COMMIT)]),
    ("END", [Action(K.COMMIT)]),
    ("ROLLBACK", [Action(K.OTHER, detail="ROLLBACK")]),
    ("END WORK AND NO CHAIN", [Action(K.COMMIT)]),
    ("COMMIT TRANSACTION AND CHAIN", [Action(K.COMMIT, detail="AND CHAIN")]),
    ("ABORT AND CHAIN", [Action(K.OTHER, detail="ROLLBACK AND CHAIN")]),
    ("ROLLBACK WORK TO sp", [Action(K.OTHER, detail="ROLLBACK TO SAVEPOINT")]),
    ("RELEASE SAVEPOINT sp", [Action(K.OTHER, detail="RELEASE")]),
    ("RESET ALL", [Action(K.SET, setting="all")]),
    ("DISCARD ALL", [Action(K.SET, setting="all", detail="DISCARD ALL")]),
    ("DISCARD TEMP", [Action(K.OTHER, detail="DISCARD")]),
    # --- anything else ----------------------------------------------------------------------
    ("GRANT SELECT ON t TO u", [Action(K.OTHER, detail="GRANT")]),
    ("ALTER INDEX ix RENAME TO iy", [Action(K.OTHER, detail="ALTER INDEX")]),
    ("ALTER TABLE t OWNER TO x", [Action(K.OTHER, table="t", detail="ALTER TABLE OWNER TO")]),
    # --- surrounding noise ------------------------------------------------------------------
    ("-- Running upgrade  -> abc\n\nDROP TABLE t;\n", [Action(K.DROP_TABLE, table="t")]),
]


@pytest.mark.parametrize(("sql", "expected"), CASES, ids=[sql[:60] for sql, _ in CASES])
def test_classify_turns_each_statement_shape_into_its_actions(
    sql: str, expected: list[Action]
) -> None:
    actions, error = classify(sql)
    assert error is None
    assert actions == expected


@pytest.mark.parametrize(
    ("sql", "default", "volatile"),
    [
        ("random()", "RANDOM()", True),
        ("gen_random_uuid()", "GEN_RANDOM_UUID()", True),
        ("uuid_generate_v4()", "UUID_GENERATE_V4()", True),
        ("clock_timestamp()", "CLOCK_TIMESTAMP()", True),
        ("timeofday()", "TIMEOFDAY()", True),
        ("nextval('s')", "NEXTVAL('s')", True),
        ("(random() * 10)::int", "CAST((RANDOM() * 10) AS INT)", True),
        ("now()", "CURRENT_TIMESTAMP", False),
        ("CURRENT_TIMESTAMP", "CURRENT_TIMESTAMP", False),
        ("0", "0", False),
        ("'pending'", "'pending'", False),
    ],
)
def test_add_column_default_is_volatile_only_for_volatile_functions(
    sql: str, default: str, volatile: bool
) -> None:
    actions, _ = classify(f"ALTER TABLE t ADD COLUMN c INT DEFAULT {sql}")
    assert (actions[0].default, actions[0].default_volatile) == (default, volatile)


def test_unparseable_statement_is_other_with_an_error() -> None:
    actions, error = classify("FROBNICATE THE TABLE")
    assert actions == [Action(K.OTHER, detail="FROBNICATE")]
    assert error is not None
    assert "\x1b" not in error


def test_statement_sqlglot_rejects_is_still_classified_from_tokens() -> None:
    actions, error = classify("CREATE TABLE t (a int) PARTITION OF p FOR VALUES FROM (1) TO (2)")
    assert error is None
    assert actions[0] == Action(K.CREATE_TABLE, table="t")


def test_command_fallback_logs_no_sqlglot_warning(caplog: pytest.LogCaptureFixture) -> None:
    classify("ALTER TABLE t OWNER TO someone")
    assert not [r for r in caplog.records if "Falling back" in r.getMessage()]


def test_parse_statements_fills_actions_and_errors_in_place() -> None:
    good = Statement(sql="DROP TABLE t", phase="upgrade", index=0)
    bad = Statement(sql="FROBNICATE", phase="upgrade", index=1)
    result = parse_statements(iter([good, bad]))
    assert result == [good, bad]
    assert result[0] is good
    assert good.actions == [Action(K.DROP_TABLE, table="t")]
    assert good.parse_error is None
    assert bad.actions == [Action(K.OTHER, detail="FROBNICATE")]
    assert bad.parse_error is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SELECT 1; SELECT 2", ["SELECT 1", "SELECT 2"]),
        ("SELECT ';'; SELECT 2;", ["SELECT ';'", "SELECT 2"]),
        ("SELECT 'it''s; here'; SELECT 2", ["SELECT 'it''s; here'", "SELECT 2"]),
        ("SELECT E'\\'; x'; SELECT 2", ["SELECT E'\\'; x'", "SELECT 2"]),
        ('SELECT "a;b" FROM t; SELECT 2', ['SELECT "a;b" FROM t', "SELECT 2"]),
        (
            "DO $$ BEGIN UPDATE t SET a = 1; END $$; SELECT 2",
            ["DO $$ BEGIN UPDATE t SET a = 1; END $$", "SELECT 2"],
        ),
        (
            "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql; SELECT 2",
            ["CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql", "SELECT 2"],
        ),
        ("SELECT 1; -- a comment; not a statement\nSELECT 2", ["SELECT 1", "SELECT 2"]),
        ("/* a; b */ SELECT 1 /* c; d */; SELECT 2", ["SELECT 1 /* c; d */", "SELECT 2"]),
        ("SELECT 1;;  ; \n-- only a comment\n", ["SELECT 1"]),
        (  # a SQL-standard body: its semicolons, and the END of its CASE, are inside it
            "CREATE OR REPLACE PROCEDURE p(begin int) LANGUAGE sql BEGIN ATOMIC "
            "SELECT CASE WHEN 1 > 0 THEN 1 END; INSERT INTO t VALUES (1); END; SELECT 2",
            [
                "CREATE OR REPLACE PROCEDURE p(begin int) LANGUAGE sql BEGIN ATOMIC "
                "SELECT CASE WHEN 1 > 0 THEN 1 END; INSERT INTO t VALUES (1); END",
                "SELECT 2",
            ],
        ),
        (  # a CASE ... END outside a body opens nothing
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql RETURN CASE WHEN true THEN 1 END; "
            "SELECT 2",
            [
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql RETURN CASE WHEN true THEN 1 END",
                "SELECT 2",
            ],
        ),
        (
            "BEGIN; CREATE TABLE t (a int); END; SELECT 2",
            ["BEGIN", "CREATE TABLE t (a int)", "END", "SELECT 2"],
        ),
        ("", []),
    ],
)
def test_split_sql_respects_quotes_dollar_bodies_and_comments(
    text: str, expected: list[str]
) -> None:
    assert split_sql(text) == expected


ALEMBIC_OFFLINE_OUTPUT = """BEGIN;

CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL, 
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

-- Running upgrade  -> 0001

SET lock_timeout = '30s';

ALTER TABLE users ADD COLUMN email VARCHAR(255) NOT NULL;

ALTER TABLE users RENAME name TO full_name;

INSERT INTO alembic_version (version_num) VALUES ('0001') RETURNING alembic_version.version_num;

COMMIT;
"""  # noqa: W291 -- Alembic writes the trailing spaces


def test_split_sql_on_alembic_offline_output_gives_each_statement_classified() -> None:
    statements = split_sql(ALEMBIC_OFFLINE_OUTPUT)
    kinds = [[a.kind for a in classify(sql)[0]] for sql in statements]
    assert kinds == [
        [K.BEGIN],
        [K.CREATE_TABLE, K.ADD_COLUMN, K.ADD_CONSTRAINT],
        [K.SET],
        [K.ADD_COLUMN],
        [K.RENAME_COLUMN],
        [K.INSERT],
        [K.COMMIT],
    ]
    assert statements[2] == "SET lock_timeout = '30s'"


def test_classify_given_several_statements_returns_the_actions_of_each() -> None:
    actions, error = classify("SET lock_timeout = '1s'; DROP TABLE t; DO $$ BEGIN x; END $$")
    assert error is None
    assert actions == [
        Action(K.SET, setting="lock_timeout", value="1s"),
        Action(K.DROP_TABLE, table="t"),
        Action(K.OTHER, detail="DO"),
    ]


def test_user_defined_type_names_are_not_mixed_up_by_the_type_memo() -> None:
    first, _ = classify("ALTER TABLE t ADD COLUMN a mood")
    second, _ = classify("ALTER TABLE t ADD COLUMN b serial4")
    assert (first[0].data_type, second[0].data_type) == ("mood", "serial4")


def test_create_table_lists_its_columns_and_primary_key() -> None:
    actions, _ = classify("CREATE TABLE t (id int GENERATED ALWAYS AS IDENTITY, at timestamp[])")
    assert [(a.kind, a.column, a.data_type, a.identity) for a in actions] == [
        (K.CREATE_TABLE, None, None, False),
        (K.ADD_COLUMN, "id", "INT", True),
        (K.ADD_COLUMN, "at", "TIMESTAMP[]", False),
    ]
