"""drop-schema, drop-type, drop-view, drop-materialized-view, drop-sequence, drop-function,
drop-extension, drop-constraint."""

from __future__ import annotations

import pytest

from bot.analysis.catalog import RULES
from bot.analysis.model import Family

from .helpers import ids, in_transaction, run

# (rule, a statement it reports, a statement it leaves alone)
CASES = [
    ("drop-schema", "DROP SCHEMA reporting CASCADE;", "DROP SCHEMA reporting;"),
    ("drop-type", "DROP TYPE mood;", "CREATE TYPE mood AS ENUM ('a');\nDROP TYPE mood;"),
    ("drop-view", "DROP VIEW active_users;", "CREATE OR REPLACE VIEW active_users AS SELECT 1;"),
    ("drop-view", "DROP VIEW IF EXISTS a, b;", "DROP MATERIALIZED VIEW a;"),
    ("drop-materialized-view", "DROP MATERIALIZED VIEW daily_totals;", "DROP VIEW daily_totals;"),
    (
        "drop-sequence",
        "DROP SEQUENCE invoice_numbers;",
        "CREATE SEQUENCE invoice_numbers;\nDROP SEQUENCE invoice_numbers;",
    ),
    ("drop-function", "DROP FUNCTION IF EXISTS audit_row() CASCADE;", "DO $$ BEGIN END $$;"),
    ("drop-function", "DROP PROCEDURE archive_orders(int);", "SELECT archive_orders(1);"),
    (
        "drop-extension",
        "DROP EXTENSION pg_trgm;",
        "CREATE EXTENSION IF NOT EXISTS pg_trgm;\nDROP EXTENSION pg_trgm;",
    ),
    (
        "drop-constraint",
        "ALTER TABLE users DROP CONSTRAINT users_email_key;",
        "ALTER TABLE users DROP CONSTRAINT users_email_check;",
    ),
    (
        "drop-constraint",
        "ALTER TABLE orders DROP CONSTRAINT fk_orders_user_id_users;",
        "CREATE TABLE t (a int);\nALTER TABLE t DROP CONSTRAINT fk_t_a;",
    ),
    (
        "drop-constraint",
        "ALTER TABLE orders DROP CONSTRAINT orders_pkey;",
        "ALTER TABLE orders DROP CONSTRAINT ck_orders_total_positive;",
    ),
]


@pytest.mark.parametrize(("rule", "bad", "good"), CASES, ids=[c[1][:50] for c in CASES])
def test_each_drop_rule_reports_its_case_and_not_the_other(rule: str, bad: str, good: str) -> None:
    findings = run(in_transaction(bad), rule)
    assert ids(findings) and set(ids(findings)) == {rule}
    assert run(in_transaction(good), rule) == []


def test_the_new_drop_rules_are_destructive() -> None:
    for rule_id in {rule for rule, _, _ in CASES}:
        assert RULES[rule_id].family is Family.DESTRUCTIVE


def test_drop_view_of_two_views_reports_each() -> None:
    findings = run("DROP VIEW a, b;", "drop-view")
    assert [f.message.split(" ")[2] for f in findings] == ["a", "b"]


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("users_pkey", "primary key"),
        ("pk_users", "primary key"),
        ("users_email_key", "unique"),
        ("uq_users_email", "unique"),
        ("orders_user_id_fkey", "foreign key"),
        ("fk_orders_user", "foreign key"),
    ],
)
def test_drop_constraint_names_the_guarantee_it_removes(name: str, kind: str) -> None:
    [found] = run(f"ALTER TABLE t DROP CONSTRAINT {name};", "drop-constraint")
    assert f"removes a {kind}" in found.message


def test_a_check_constraint_whose_name_mentions_a_key_is_not_a_key() -> None:
    assert run("ALTER TABLE t DROP CONSTRAINT api_key_not_empty;", "drop-constraint") == []
