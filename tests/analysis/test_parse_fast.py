"""bot.analysis.parse.fast: its shortcuts give exactly what the sqlglot path gives."""

from __future__ import annotations

import itertools

import pytest

from bot.analysis.parse import classify, classify_full
from bot.analysis.parse.fast import classify_fast

NAMES = ("users", "app.users", "Users", "t_1$x")
SHAPES = (
    "DROP INDEX {n}",
    "drop index concurrently {n}",
    "DROP INDEX IF EXISTS {n}",
    "DROP INDEX CONCURRENTLY IF EXISTS {n}",
    "ALTER TABLE {n} DROP COLUMN email",
    "ALTER TABLE {n} ALTER COLUMN Email SET NOT NULL",
    "alter table {n} alter column email drop not null",
    "ALTER TABLE {n} RENAME email TO email_address",
    "ALTER TABLE {n} RENAME COLUMN email TO email_address",
    "CREATE INDEX ix_a ON {n} (a)",
    "CREATE UNIQUE INDEX CONCURRENTLY ix_a ON {n} (a, B ,c)",
    "CREATE INDEX ix_a ON {n}(a)",
    "ALTER TABLE {n} ADD COLUMN email VARCHAR(255) NOT NULL",
    "ALTER TABLE {n} ADD note text NULL",
    "ALTER TABLE {n} ADD COLUMN seen TIMESTAMP WITHOUT TIME ZONE",
    "ALTER TABLE {n} ADD COLUMN seen timestamp with time zone not null",
    "ALTER TABLE {n} ADD COLUMN price NUMERIC(10, 2)",
    "ALTER TABLE {n} ADD COLUMN tags TEXT[]",
    "ALTER TABLE {n} ADD COLUMN id BIGSERIAL NOT NULL",
    "ALTER TABLE {n} ADD COLUMN score double precision",
    "ALTER TABLE {n} ADD COLUMN name character varying(20)",
    "ALTER TABLE {n} ALTER COLUMN age TYPE BIGINT",
    "ALTER TABLE {n} ALTER COLUMN age SET DATA TYPE numeric(12,4)",
)


@pytest.mark.parametrize(
    "sql", [shape.format(n=name) for shape, name in itertools.product(SHAPES, NAMES)]
)
def test_each_shortcut_matches_and_equals_the_full_path(sql: str) -> None:
    fast = classify_fast(sql)
    assert fast is not None
    assert (fast, None) == classify_full(sql)


@pytest.mark.parametrize(
    "sql",
    [
        'DROP INDEX "Ix"',  # quoted: the full path folds it
        "DROP INDEX ix CASCADE",
        "DROP INDEX a, b",
        "CREATE INDEX CONCURRENTLY ON t (a)",  # no name: CONCURRENTLY is not the name
        "CREATE INDEX ix ON t USING gin (a)",
        "CREATE INDEX ix ON t (lower(a))",
        "CREATE INDEX ix ON t (a) WHERE a > 0",
        "CREATE INDEX ix ON ONLY t (a)",
        "ALTER TABLE t DROP COLUMN IF EXISTS a",
        "ALTER TABLE t DROP COLUMN a CASCADE",
        "ALTER TABLE ONLY t DROP COLUMN a",
        "ALTER TABLE t RENAME TO u",
        "ALTER TABLE t RENAME CONSTRAINT a TO b",
        "ALTER TABLE t ALTER COLUMN a SET DEFAULT 0",
        "ALTER TABLE t ADD COLUMN id integer PRIMARY KEY",
        "ALTER TABLE t ADD COLUMN n integer NOT NULL DEFAULT 0",
        "ALTER TABLE t ADD COLUMN n text COLLATE C",
        "ALTER TABLE t ADD COLUMN n serial4",
        "ALTER TABLE t ADD COLUMN n mood",
        "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0)",
        "ALTER TABLE t ALTER COLUMN a TYPE text USING a::text",
        "ALTER TABLE t ALTER COLUMN seen TYPE timestamp(3) without time zone",  # not handled
        # a comment or a string after a simple shape, holding words of a token-read clause
        "ALTER TABLE t ADD COLUMN c int NOT NULL /* using index */",
        "ALTER TABLE t DROP COLUMN a -- VALIDATE CONSTRAINT later",
        "ALTER TABLE t -- detach partition\nADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES u (id)",
        "ALTER TABLE t ADD COLUMN c text NOT NULL CHECK (c <> 'using index')",
        "DROP INDEX ix -- row level security",
        # transaction control, session statements, option lists, DROP DOMAIN
        "CREATE FUNCTION f(i int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT i + 1; END",
        "ROLLBACK TO SAVEPOINT sp",
        "COMMIT AND CHAIN",
        "ROLLBACK AND CHAIN",
        "SAVEPOINT sp",
        "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO r",
        "REINDEX (VERBOSE, CONCURRENTLY) TABLE t",
        "VACUUM (FULL, VERBOSE off) t",
        "ALTER TABLE p DETACH PARTITION p1 FINALIZE",
        "RESET ALL",
        "DROP DOMAIN d",
    ],
)
def test_other_shapes_take_the_full_path(sql: str) -> None:
    assert classify_fast(sql) is None
    assert classify(sql) == classify_full(sql)
