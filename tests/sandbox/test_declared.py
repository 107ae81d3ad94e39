"""What the dry-run's SQL declared: every measured change it did not is `undeclared-change`.

Hand-made base and head snapshots (as the parent reads them from the catalogs) and real
offline SQL, classified by `bot.analysis.parse`, as the sandbox run passes them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from bot.analysis.model import Statement
from bot.analysis.parse import parse_statements
from bot.sandbox.declared import undeclared_changes
from bot.sandbox.schema import (
    Column,
    Constraint,
    Index,
    Policy,
    SchemaSnapshot,
    Table,
    diff_schema,
)

ID = Column("id", "integer", nullable=False)
AMOUNT = Column("amount", "integer", nullable=True, default="0")
EMAIL = Column("email", "text", nullable=True)
ACCOUNTS = Table("public", "accounts", columns=(ID, AMOUNT, EMAIL))
NOTES = Table("public", "notes", columns=(ID,))
PKEY = Index(
    "public.accounts_pkey",
    "public.accounts",
    "CREATE UNIQUE INDEX accounts_pkey ON public.accounts USING btree (id)",
    unique=True,
    primary=True,
    key_columns=("id",),
)
EMAIL_INDEX = Index(
    "public.ix_accounts_email",
    "public.accounts",
    "CREATE UNIQUE INDEX ix_accounts_email ON public.accounts USING btree (email)",
    unique=True,
    key_columns=("email",),
)
AMOUNT_INDEX = Index(
    "public.ix_accounts_amount",
    "public.accounts",
    "CREATE INDEX ix_accounts_amount ON public.accounts USING btree (amount)",
    key_columns=("amount",),
)
PKEY_CONSTRAINT = Constraint(
    "public.accounts", "accounts_pkey", "primary key", "PRIMARY KEY (id)", columns=("id",)
)
POSITIVE = Constraint(
    "public.accounts", "amount_positive", "check", "CHECK ((amount > 0))", columns=("amount",)
)
TENANT_POLICY = Policy("public.accounts", "tenant", "ALL", ("public",), "(id = 1)")


def base(**overrides: Any) -> SchemaSnapshot:
    snapshot: dict[str, Any] = {
        "tables": {"public.accounts": ACCOUNTS, "public.notes": NOTES},
        "indexes": {PKEY.name: PKEY, EMAIL_INDEX.name: EMAIL_INDEX},
        "constraints": {PKEY_CONSTRAINT.key: PKEY_CONSTRAINT},
    }
    return SchemaSnapshot(**(snapshot | overrides))


def with_column(column: Column) -> SchemaSnapshot:
    columns = tuple(column if c.name == column.name else c for c in ACCOUNTS.columns)
    return base(
        tables={"public.accounts": replace(ACCOUNTS, columns=columns), "public.notes": NOTES}
    )


def undeclared(before: SchemaSnapshot, after: SchemaSnapshot, *sql: str) -> list[str]:
    statements = [Statement(sql=text, phase="upgrade", index=i) for i, text in enumerate(sql)]
    parse_statements(statements)
    found = undeclared_changes(diff_schema(before, after), statements, before, after)
    return [item.message for item in found]


BIGINT = replace(AMOUNT, type="bigint")
NOT_NULL = replace(AMOUNT, nullable=False)
DEFAULT_5 = replace(AMOUNT, default="5")
WITHOUT_EMAIL_INDEX = base(indexes={PKEY.name: PKEY})
WITH_AMOUNT_INDEX = base(
    indexes={PKEY.name: PKEY, EMAIL_INDEX.name: EMAIL_INDEX, AMOUNT_INDEX.name: AMOUNT_INDEX}
)
WITH_CHECK = base(constraints={PKEY_CONSTRAINT.key: PKEY_CONSTRAINT, POSITIVE.key: POSITIVE})
WITH_RLS = base(
    tables={"public.accounts": replace(ACCOUNTS, rls_enabled=True), "public.notes": NOTES}
)
WITH_POLICY = base(policies={TENANT_POLICY.key: TENANT_POLICY})

# (after, the message when nothing declares it, SQL declaring it, SQL that does not)
CASES = {
    "type": (
        with_column(BIGINT),
        "column accounts.amount: type integer → bigint, but the dry-run's SQL never declared it",
        "ALTER TABLE accounts ALTER COLUMN amount TYPE bigint",
        "ALTER TABLE accounts ALTER COLUMN email TYPE varchar(200)",
    ),
    "nullability": (
        with_column(NOT_NULL),
        "column accounts.amount: nullable NULL → NOT NULL, but the dry-run's SQL never declared it",
        "ALTER TABLE public.accounts ALTER COLUMN amount SET NOT NULL",
        "ALTER TABLE accounts ALTER COLUMN amount SET DEFAULT 0",
    ),
    "default": (
        with_column(DEFAULT_5),
        "column accounts.amount: default 0 → 5, but the dry-run's SQL never declared it",
        "ALTER TABLE accounts ALTER COLUMN amount SET DEFAULT 5",
        "ALTER TABLE notes ALTER COLUMN amount SET DEFAULT 5",
    ),
    "index removed": (
        WITHOUT_EMAIL_INDEX,
        "index ix_accounts_email removed (was: CREATE UNIQUE INDEX ix_accounts_email ON "
        "public.accounts USING btree (email)), but the dry-run's SQL never declared it",
        "DROP INDEX CONCURRENTLY IF EXISTS public.ix_accounts_email",
        "DROP INDEX ix_accounts_email_old",
    ),
    "index removed with its column": (
        base(
            tables={
                "public.accounts": replace(ACCOUNTS, columns=(ID, AMOUNT)),
                "public.notes": NOTES,
            },
            indexes={PKEY.name: PKEY},
        ),
        "column accounts.email disappeared, but the dry-run's SQL never dropped or renamed it",
        "ALTER TABLE accounts DROP COLUMN email",
        "ALTER TABLE notes DROP COLUMN email",
    ),
    "index added": (
        WITH_AMOUNT_INDEX,
        "index ix_accounts_amount added: CREATE INDEX ix_accounts_amount ON public.accounts "
        "USING btree (amount), but the dry-run's SQL never declared it",
        "CREATE INDEX CONCURRENTLY ix_accounts_amount ON accounts (amount)",
        "CREATE INDEX ix_notes_amount ON notes (amount)",
    ),
    "constraint added": (
        WITH_CHECK,
        "constraint accounts.amount_positive added: CHECK ((amount > 0)), but the dry-run's "
        "SQL never declared it",
        "ALTER TABLE accounts ADD CONSTRAINT amount_positive CHECK (amount > 0) NOT VALID",
        "ALTER TABLE notes ADD CONSTRAINT amount_positive CHECK (amount > 0)",
    ),
    "row level security": (
        WITH_RLS,
        "rls accounts: disabled → enabled, but the dry-run's SQL never declared it",
        "ALTER TABLE accounts ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE notes ENABLE ROW LEVEL SECURITY",
    ),
    "policy": (
        WITH_POLICY,
        "policy accounts.tenant added: PERMISSIVE FOR ALL TO public USING ((id = 1)), but the "
        "dry-run's SQL never declared it",
        "CREATE POLICY tenant ON accounts USING (id = 1)",
        "CREATE POLICY tenant ON notes USING (id = 1)",
    ),
    "raw SQL naming the object": (
        with_column(BIGINT),
        "column accounts.amount: type integer → bigint, but the dry-run's SQL never declared it",
        "DO $$ BEGIN EXECUTE 'ALTER TABLE accounts ALTER COLUMN amount TYPE bigint'; END $$",
        "DO $$ BEGIN EXECUTE format('ALTER TABLE %I ALTER COLUMN %I TYPE bigint', "
        "'accounts', 'amou' || 'nt'); END $$",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_a_measured_change_nothing_declared_is_undeclared(case: str) -> None:
    after, message, _, _ = CASES[case]
    assert message in undeclared(base(), after)


@pytest.mark.parametrize("case", CASES)
def test_the_statement_doing_it_declares_the_change(case: str) -> None:
    after, _, declaring, _ = CASES[case]
    assert undeclared(base(), after, declaring) == []


@pytest.mark.parametrize("case", CASES)
def test_a_statement_doing_something_else_declares_nothing(case: str) -> None:
    after, message, _, other = CASES[case]
    assert message in undeclared(base(), after, other)


def test_a_side_connections_type_change_and_dropped_unique_index_are_both_undeclared() -> None:
    """What the hostile fixture does through its own connection: two findings, whatever the
    migration's own SQL touched on the same table."""
    after = replace(with_column(BIGINT), indexes={PKEY.name: PKEY})
    messages = undeclared(base(), after, "ALTER TABLE accounts ADD COLUMN note text")
    assert len(messages) == 2
    assert messages[0].startswith("column accounts.amount: type integer → bigint")
    assert messages[1].startswith("index ix_accounts_email removed")


def test_a_type_change_declares_the_recast_default_and_the_rebuilt_index() -> None:
    index = replace(AMOUNT_INDEX, definition=AMOUNT_INDEX.definition + " WITH (fillfactor=90)")
    before = WITH_AMOUNT_INDEX
    after = replace(
        with_column(replace(AMOUNT, type="bigint", default="'0'::bigint")),
        indexes={**WITH_AMOUNT_INDEX.indexes, index.name: index},
    )
    assert undeclared(before, after, "ALTER TABLE accounts ALTER COLUMN amount TYPE bigint") == []


def test_a_dropped_unique_constraint_declares_its_index() -> None:
    unique = Constraint(
        "public.accounts", "ix_accounts_email", "unique", "UNIQUE (email)", columns=("email",)
    )
    before = base(constraints={PKEY_CONSTRAINT.key: PKEY_CONSTRAINT, unique.key: unique})
    sql = "ALTER TABLE accounts DROP CONSTRAINT ix_accounts_email"
    assert undeclared(before, WITHOUT_EMAIL_INDEX, sql) == []


def test_tables_created_dropped_and_renamed_are_declared() -> None:
    orders = Table("public", "orders", columns=(ID,))
    after = SchemaSnapshot(tables={"public.accounts_v2": ACCOUNTS, "public.orders": orders})
    sql = [
        "CREATE TABLE orders (id integer NOT NULL)",
        "DROP TABLE notes",
        "ALTER TABLE accounts RENAME TO accounts_v2",
    ]
    assert undeclared(base(indexes={}, constraints={}), after, *sql) == []
    assert undeclared(base(indexes={}, constraints={}), after, *sql[:2]) == [
        "table accounts disappeared, but the dry-run's SQL never dropped or renamed it",
        "table accounts_v2 added: (id integer NOT NULL, amount integer DEFAULT 0, email text), "
        "but the dry-run's SQL never declared it",
    ]


def test_an_unparsable_statement_declares_only_what_it_names() -> None:
    after = replace(with_column(BIGINT), indexes={PKEY.name: PKEY})
    messages = undeclared(base(), after, "SELECT accounts amount FROM WHERE ((")
    assert messages == [
        "index ix_accounts_email removed (was: CREATE UNIQUE INDEX ix_accounts_email ON "
        "public.accounts USING btree (email)), but the dry-run's SQL never declared it"
    ]
