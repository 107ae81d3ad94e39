"""require-concurrent-partition-detach, set-logged-unlogged, refresh-materialized-view-non-
concurrently, vacuum-full, cluster, reindex-non-concurrently, add-domain-constraint-validated."""

from __future__ import annotations

import pytest

from .helpers import ids, in_transaction, run

# (rule, a statement it reports, the safe form or a case it leaves alone)
CASES = [
    (
        "require-concurrent-partition-detach",
        "ALTER TABLE events DETACH PARTITION events_2020;",
        "CREATE TABLE events (id bigint) PARTITION BY RANGE (id);\n"
        "ALTER TABLE events DETACH PARTITION events_2020;",
    ),
    (
        "set-logged-unlogged",
        "ALTER TABLE events SET UNLOGGED;",
        "CREATE TABLE scratch (id bigint);\nALTER TABLE scratch SET UNLOGGED;",
    ),
    (
        "set-logged-unlogged",
        "ALTER TABLE events SET LOGGED;",
        "ALTER TABLE events SET (fillfactor = 90);",
    ),
    (
        "refresh-materialized-view-non-concurrently",
        "REFRESH MATERIALIZED VIEW daily_totals;",
        "REFRESH MATERIALIZED VIEW CONCURRENTLY daily_totals;",
    ),
    (
        "refresh-materialized-view-non-concurrently",
        "REFRESH MATERIALIZED VIEW daily_totals;",
        "CREATE MATERIALIZED VIEW daily_totals AS SELECT 1 AS n WITH NO DATA;\n"
        "REFRESH MATERIALIZED VIEW daily_totals;",
    ),
    ("vacuum-full", "VACUUM FULL events;", "VACUUM events;"),
    ("vacuum-full", "VACUUM (FULL, ANALYZE) events;", "VACUUM (ANALYZE) events;"),
    ("cluster", "CLUSTER events USING ix_events_at;", "CREATE TABLE t (a int);\nCLUSTER t;"),
    (
        "reindex-non-concurrently",
        "REINDEX INDEX ix_events_at;",
        "REINDEX INDEX CONCURRENTLY ix_events_at;",
    ),
    ("reindex-non-concurrently", "REINDEX TABLE events;", "REINDEX TABLE CONCURRENTLY events;"),
    (
        "add-domain-constraint-validated",
        "ALTER DOMAIN positive_int ADD CONSTRAINT positive CHECK (VALUE > 0);",
        "ALTER DOMAIN positive_int ADD CONSTRAINT positive CHECK (VALUE > 0) NOT VALID;",
    ),
    (
        "add-domain-constraint-validated",
        "ALTER DOMAIN email SET NOT NULL;",
        "ALTER DOMAIN email VALIDATE CONSTRAINT email_not_null;",
    ),
]


@pytest.mark.parametrize(("rule", "bad", "good"), CASES, ids=[c[1][:50] for c in CASES])
def test_each_locking_rule_reports_its_case_and_not_the_safe_one(
    rule: str, bad: str, good: str
) -> None:
    findings = run(in_transaction(bad), rule)
    assert ids(findings) == [rule]
    assert findings[0].advice
    assert run(in_transaction(good), rule) == []


def test_detach_names_the_partition_and_the_locked_parent() -> None:
    [found] = run(
        "ALTER TABLE events DETACH PARTITION events_2020;", "require-concurrent-partition-detach"
    )
    assert "events_2020" in found.message and "lock on events" in found.message
    assert "DETACH PARTITION events_2020 CONCURRENTLY" in (found.advice or "")


def test_detach_concurrently_inside_a_transaction_is_refused_by_postgresql() -> None:
    sql = in_transaction("ALTER TABLE events DETACH PARTITION events_2020 CONCURRENTLY;")
    assert ids(run(sql, "concurrently-in-transaction")) == ["concurrently-in-transaction"]


def test_reindex_of_an_index_created_in_the_stream_is_fine() -> None:
    sql = "CREATE INDEX CONCURRENTLY ix_a ON events (a);\nREINDEX INDEX ix_a;"
    assert run(sql, "reindex-non-concurrently") == []
