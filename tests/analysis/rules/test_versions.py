"""The version-dependent judgements: concurrent index builds on 14.0-14.3, and constant
defaults before 11 (part of volatile-default)."""

from __future__ import annotations

import pytest

from bot.analysis.options import PgVersion, parse_pg_version

from .helpers import ids, in_transaction, run

BUILD = "CREATE INDEX CONCURRENTLY ix_orders_created_at ON orders (created_at);"
REBUILD = "REINDEX INDEX CONCURRENTLY ix_orders_created_at;"


@pytest.mark.parametrize("version", ["14", "14.0", "14.2", "14.3"])
@pytest.mark.parametrize("sql", [BUILD, REBUILD])
def test_a_concurrent_index_build_on_14_0_to_14_3_is_an_error(version: str, sql: str) -> None:
    findings = run(sql, "concurrent-index-corruption", pg_version=version)
    assert ids(findings) == ["concurrent-index-corruption"]
    assert findings[0].severity.value == "error"
    assert f"PostgreSQL {version}" in findings[0].message
    assert "14.4" in (findings[0].advice or "")


@pytest.mark.parametrize("version", [None, "13.9", "14.4", "14.10", "16"])
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
