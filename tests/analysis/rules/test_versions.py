"""The version-dependent judgements: concurrent index builds on 14.0-14.3, and constant
defaults before 11 (part of volatile-default)."""

from __future__ import annotations

import pytest

from bot.analysis.options import PgVersion, parse_pg_version

from .helpers import ids, in_transaction, run

BUILD = "CREATE INDEX CONCURRENTLY ix_orders_created_at ON orders (created_at);"
REBUILD = "REINDEX INDEX CONCURRENTLY ix_orders_created_at;"


@pytest.mark.parametrize("version", ["14.0", "14.2", "14.3"])
@pytest.mark.parametrize("sql", [BUILD, REBUILD])
def test_a_concurrent_index_build_on_14_0_to_14_3_is_an_error(version: str, sql: str) -> None:
    findings = run(sql, "concurrent-index-corruption", pg_version=version)
    assert ids(findings) == ["concurrent-index-corruption"]
    assert findings[0].severity.value == "error"
    assert f"PostgreSQL {version}" in findings[0].message
    assert "14.4" in (findings[0].advice or "")


# a bare "14" leaves the minor unknown: in practice a current 14.x, not an affected one
@pytest.mark.parametrize("version", [None, "13.9", "14", "14.4", "14.10", "16"])
def test_other_versions_or_an_unknown_one_build_concurrently_in_peace(version: str | None) -> None:
    assert run(BUILD, "concurrent-index-corruption", pg_version=version) == []


def test_a_plain_index_build_is_not_this_rules_concern() -> None:
    sql = "CREATE INDEX ix_orders_created_at ON orders (created_at);"
    assert run(sql, "concurrent-index-corruption", pg_version="14.2") == []


CONSTANT_DEFAULT = "ALTER TABLE orders ADD COLUMN status text NOT NULL DEFAULT 'new';"


@pytest.mark.parametrize("version", ["10", "9.6"])
def test_before_11_a_constant_default_rewrites_the_table(version: str) -> None:
    findings = run(in_transaction(CONSTANT_DEFAULT), "volatile-default", pg_version=version)
    assert ids(findings) == ["volatile-default"]
    assert f"on PostgreSQL {version} (before 11)" in findings[0].message
    assert "has the volatile default" not in findings[0].message


@pytest.mark.parametrize("version", [None, "11", "16"])
def test_from_11_a_constant_default_is_instant(version: str | None) -> None:
    assert run(in_transaction(CONSTANT_DEFAULT), "volatile-default", pg_version=version) == []


@pytest.mark.parametrize(
    "default", ["NULL", "NULL::text", "CAST(NULL AS text)", "(NULL)::character varying(20)"]
)
def test_a_null_default_rewrites_nothing_even_before_11(default: str) -> None:
    sql = f"ALTER TABLE orders ADD COLUMN note text DEFAULT {default};"
    assert run(in_transaction(sql), "volatile-default", pg_version="10") == []


@pytest.mark.parametrize("default", ["''::text", "CAST('n/a' AS text)", "NULL::text || 'x'"])
def test_a_typed_constant_is_no_null_default(default: str) -> None:
    sql = f"ALTER TABLE orders ADD COLUMN note text DEFAULT {default};"
    assert ids(run(in_transaction(sql), "volatile-default", pg_version="10")) == [
        "volatile-default"
    ]


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("16", PgVersion(16)),
        ("14.2", PgVersion(14, 2)),
        ("9.6", PgVersion(9, 6)),
        ("15.18 (Debian 15.18-0+deb12u1)", PgVersion(15, 18)),
        ("PostgreSQL 16.1 on x86_64-pc-linux-gnu", PgVersion(16, 1)),
        ("fifteen", None),
    ],
)
def test_versions_are_read_as_servers_and_people_write_them(
    text: str, version: PgVersion | None
) -> None:
    assert parse_pg_version(text) == version


@pytest.mark.parametrize("version", ["11", "9.6"])
def test_before_12_reindex_advice_builds_a_new_index_and_swaps_it_in(version: str) -> None:
    [found] = run("REINDEX INDEX ix_events_at;", "reindex-non-concurrently", pg_version=version)
    advice = found.advice or ""
    assert "REINDEX INDEX CONCURRENTLY" not in advice
    assert "CREATE INDEX CONCURRENTLY ix_events_at_new" in advice
    assert "ALTER INDEX ix_events_at_new RENAME TO ix_events_at" in advice


@pytest.mark.parametrize("version", [None, "12", "16"])
def test_from_12_or_unknown_reindex_advice_is_reindex_concurrently(version: str | None) -> None:
    [found] = run("REINDEX INDEX ix_events_at;", "reindex-non-concurrently", pg_version=version)
    assert 'REINDEX INDEX CONCURRENTLY ix_events_at"' in (found.advice or "")


DETACH = "ALTER TABLE events DETACH PARTITION events_2020;"


def test_before_14_detach_advice_is_a_short_lock_timeout_not_concurrently() -> None:
    [found] = run(DETACH, "require-concurrent-partition-detach", pg_version="13.8")
    assert 'CONCURRENTLY")' not in (found.advice or "")
    assert "SET lock_timeout" in (found.advice or "")


@pytest.mark.parametrize("version", [None, "14", "16"])
def test_from_14_or_unknown_detach_advice_is_concurrently(version: str | None) -> None:
    [found] = run(DETACH, "require-concurrent-partition-detach", pg_version=version)
    assert "DETACH PARTITION events_2020 CONCURRENTLY" in (found.advice or "")


ADD_VALUE = "ALTER TYPE order_status ADD VALUE 'refunded';"


@pytest.mark.parametrize("version", ["11", "10", "9.6"])
def test_before_12_add_value_inside_a_transaction_is_refused(version: str) -> None:
    findings = run(in_transaction(ADD_VALUE), "add-enum-value-in-transaction", pg_version=version)
    assert ids(findings) == ["add-enum-value-in-transaction"]
    assert findings[0].severity.value == "error"
    assert "autocommit_block()" in (findings[0].advice or "")


@pytest.mark.parametrize("version", [None, "12", "16"])
def test_from_12_or_unknown_add_value_in_a_transaction_is_fine(version: str | None) -> None:
    assert run(in_transaction(ADD_VALUE), "add-enum-value-in-transaction", pg_version=version) == []


def test_before_12_add_value_outside_a_transaction_or_to_a_new_enum_is_fine() -> None:
    assert run(ADD_VALUE, "add-enum-value-in-transaction", pg_version="11") == []
    new_enum = "CREATE TYPE order_status AS ENUM ('new');\n" + ADD_VALUE
    assert run(in_transaction(new_enum), "add-enum-value-in-transaction", pg_version="11") == []
