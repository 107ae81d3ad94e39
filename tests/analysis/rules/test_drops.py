"""drop-schema, drop-type, drop-view, drop-materialized-view, drop-sequence, drop-function,
drop-extension, drop-constraint."""

from __future__ import annotations

import pytest

from bot.analysis.catalog import RULES
from bot.analysis.model import Family
from bot.analysis.registry import RULES as REGISTRY

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


def test_a_check_constraint_named_with_a_check_prefix_or_suffix_is_not_a_key() -> None:
    for name in ("ck_orders_api_key", "chk_orders_pk", "check_users_fk", "orders_key_ck"):
        assert run(f"ALTER TABLE orders DROP CONSTRAINT {name};", "drop-constraint") == []
    [found] = run("ALTER TABLE orders DROP CONSTRAINT orders_api_key;", "drop-constraint")
    assert "removes a unique (judged by its name alone)" in found.message


FN = "CREATE FUNCTION audit_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;"

# (rule, a drop the change makes good again, the same drop left a lasting loss)
RECREATED = [
    (
        "drop-view",
        "DROP VIEW active_users;\nCREATE VIEW active_users AS SELECT 1 AS id;",
        "DROP VIEW active_users CASCADE;\nCREATE VIEW active_users AS SELECT 1 AS id;",
    ),
    (
        "drop-view",
        "CREATE VIEW report AS SELECT 1;\nDROP VIEW report;",
        "CREATE VIEW report_v2 AS SELECT 1;\nDROP VIEW report;",
    ),
    (
        "drop-function",
        f"DROP FUNCTION audit_row();\n{FN}",
        f"DROP FUNCTION audit_row() CASCADE;\n{FN}",
    ),
    ("drop-function", f"{FN}\nDROP FUNCTION audit_row();", f"{FN}\nDROP FUNCTION audit_rows();"),
    (
        "drop-constraint",
        "ALTER TABLE orders DROP CONSTRAINT orders_user_id_fkey;\n"
        "ALTER TABLE orders ADD CONSTRAINT orders_user_id_fkey FOREIGN KEY (user_id) "
        "REFERENCES users (id) NOT VALID;",
        "ALTER TABLE orders DROP CONSTRAINT orders_user_id_fkey;\n"
        "ALTER TABLE invoices ADD CONSTRAINT orders_user_id_fkey FOREIGN KEY (user_id) "
        "REFERENCES users (id) NOT VALID;",
    ),
    (
        "drop-constraint",
        "ALTER TABLE orders DROP CONSTRAINT orders_pkey, "
        "ADD CONSTRAINT orders_pkey PRIMARY KEY USING INDEX orders_pkey_new;",
        "ALTER TABLE orders DROP CONSTRAINT orders_pkey CASCADE, "
        "ADD CONSTRAINT orders_pkey PRIMARY KEY USING INDEX orders_pkey_new;",
    ),
    (
        "drop-type",
        "ALTER TYPE order_status RENAME TO order_status_old;\n"
        "CREATE TYPE order_status AS ENUM ('new', 'paid');\n"
        "ALTER TABLE orders ALTER COLUMN status TYPE order_status "
        "USING status::text::order_status;\n"
        "DROP TYPE order_status_old;",
        "ALTER TYPE order_status RENAME TO order_status_old;\nDROP TYPE order_status_old;",
    ),
]


@pytest.mark.parametrize(("rule", "kept", "lost"), RECREATED, ids=[c[2][:50] for c in RECREATED])
def test_a_drop_the_change_makes_good_again_is_not_a_loss(rule: str, kept: str, lost: str) -> None:
    assert run(in_transaction(kept), rule) == []
    assert ids(run(in_transaction(lost), rule)) == [rule]


def test_a_materialized_view_created_again_still_loses_its_rows() -> None:
    sql = "DROP MATERIALIZED VIEW totals;\nCREATE MATERIALIZED VIEW totals AS SELECT 1;"
    assert ids(run(in_transaction(sql), "drop-materialized-view")) == ["drop-materialized-view"]


def test_the_explanations_say_which_drops_need_approval_as_the_registry_does() -> None:
    for rule_id in {rule for rule, _, _ in CASES}:
        rule = REGISTRY[rule_id]
        assert "backup and approval" not in rule.info.explanation
        assert "severity follows the environment" in rule.info.explanation
        needs = "needs the environment's approvals" in rule.info.explanation
        assert needs is rule.needs_approval, rule_id
        assert needs or "`approval.rules`" in rule.info.explanation
    assert REGISTRY["drop-schema"].needs_approval
