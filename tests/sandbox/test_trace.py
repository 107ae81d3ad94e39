"""From the child's raw trace to statements and lock spans (pure: no database)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from bot.analysis.sandbox_model import LockSpan, TracedStatement
from bot.sandbox.trace import lock_spans, read_trace, traced_statements

MIGRATION = "migrations/versions/0002_change.py"
AE = "AccessExclusiveLock"


def record(sql: str, **fields: Any) -> dict[str, Any]:
    return {"sql": sql, "start": 0.0, "duration": 0.0, "path": MIGRATION, "line": 1} | fields


def statement(
    start: float, duration: float, locks: list[tuple[str, str]] | None = None, **fields: Any
) -> TracedStatement:
    return TracedStatement(
        sql=f"statement at {start}",
        start_s=start,
        duration_s=duration,
        locks=locks or [],
        **fields,
    )


def test_traced_statements_keep_migration_and_env_statements() -> None:
    raw = [
        record("SET lock_timeout = '30s'", path=None, line=None),
        record("SELECT pg_catalog.pg_class.relname FROM pg_catalog.pg_class", path=None),
        record("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)", path=None),
        record("SELECT 1 FROM somewhere", path=None, bookkeeping=True),
        record(
            "ALTER TABLE accounts ADD COLUMN note text",
            line=15,
            start=0.5,
            duration=0.25,
            locks=[["accounts", AE]],
            rewritten=[],
            lock_timeout="0",
            statement_timeout="5min",
        ),
        record("UPDATE alembic_version SET version_num='0002'", path=None),
    ]
    trace = traced_statements(raw, {MIGRATION: "0002"})
    assert [s.sql for s in trace] == [
        "SET lock_timeout = '30s'",
        "ALTER TABLE accounts ADD COLUMN note text",
    ]
    env_set, alter = trace
    assert (env_set.path, env_set.revision) == (None, None)
    assert (alter.path, alter.line, alter.revision) == (MIGRATION, 15, "0002")
    assert (alter.start_s, alter.duration_s) == (0.5, 0.25)
    assert alter.locks == [("accounts", AE)]
    assert (alter.lock_timeout, alter.statement_timeout) == ("0", "5min")
    assert alter.autocommit is False and alter.error is None


def test_traced_statement_keeps_the_error_of_the_failed_statement() -> None:
    raw = [record("ALTER TABLE accounts ADD COLUMN email text", error="already exists")]
    (failed,) = traced_statements(raw, {})
    assert failed.error == "already exists"
    assert failed.revision is None  # a path no revision is known for


def test_lock_is_held_across_later_statements_until_the_commit() -> None:
    trace = [
        statement(1.0, 0.5, [("accounts", AE)]),  # ALTER
        statement(1.5, 2.0, [("accounts", "RowExclusiveLock")]),  # backfill UPDATE
        statement(3.5, 0.1),
        statement(5.0, 0.1, [("orders", "ShareLock")]),  # after the commit at 4.0
    ]
    spans = lock_spans(trace, commits=[4.0, 6.0])
    alter = next(s for s in spans if s.mode == AE)
    assert (alter.first_statement, alter.last_statement) == (0, 2)
    assert (alter.start_s, alter.end_s, alter.held_s) == (1.0, 4.0, 3.0)
    update = next(s for s in spans if s.mode == "RowExclusiveLock")
    assert (update.first_statement, update.last_statement, update.end_s) == (1, 2, 4.0)
    later = next(s for s in spans if s.relation == "orders")
    assert (later.first_statement, later.last_statement, later.end_s) == (3, 3, 6.0)


def test_autocommit_statement_holds_its_lock_only_while_it_runs() -> None:
    trace = [
        statement(1.0, 0.5, [("accounts", "ShareUpdateExclusiveLock")], autocommit=True),
        statement(2.0, 0.5, [("orders", AE)]),
    ]
    spans = lock_spans(trace, commits=[3.0])
    concurrent, alter = spans
    assert (concurrent.first_statement, concurrent.last_statement) == (0, 0)
    assert (concurrent.end_s, concurrent.held_s) == (1.5, 0.5)
    assert (alter.first_statement, alter.last_statement, alter.end_s) == (1, 1, 3.0)


def test_commit_before_a_lock_was_taken_does_not_end_it() -> None:
    """A commit that happened earlier (e.g. entering an autocommit block) is not the end of a
    later transaction's lock."""
    trace = [statement(0.0, 0.1), statement(2.0, 0.5, [("accounts", AE)])]
    (span,) = lock_spans(trace, commits=[1.0, 4.0])
    assert (span.start_s, span.end_s) == (2.0, 4.0)


def test_without_a_commit_the_lock_lasts_until_the_run_ends() -> None:
    """A failed upgrade never commits: its locks are held until the rollback at the end."""
    trace = [statement(1.0, 0.5, [("accounts", AE)]), statement(1.5, 1.0, error="boom")]
    (span,) = lock_spans(trace, commits=[])
    assert (span.last_statement, span.end_s) == (1, 2.5)


def test_no_statements_no_spans() -> None:
    assert lock_spans([], commits=[1.0]) == []


def reference_lock_spans(trace: list[TracedStatement], commits: list[float]) -> list[LockSpan]:
    """The straightforward definition (quadratic): every later statement looked at."""
    spans = []
    run_end = max((s.start_s + s.duration_s for s in trace), default=0.0)
    for index, taken in enumerate(trace):
        taken_end = taken.start_s + taken.duration_s
        if taken.autocommit:
            end = taken_end
        else:
            end = min((c for c in commits if c >= taken_end), default=run_end)
        last = index
        for later in range(index + 1, len(trace)):
            if trace[later].start_s <= end:
                last = later
        for relation, mode in taken.locks:
            spans.append(LockSpan(relation, mode, index, last, taken.start_s, end))
    return spans


def synthetic_trace(
    rng: random.Random, size: int, *, ordered: bool
) -> tuple[list[TracedStatement], list[float]]:
    """Times on a coarse grid (ties between starts, ends and commits are common); some
    statements lock, some in autocommit; out of order when not `ordered` (a child's records
    are not trusted to be)."""
    clock, trace = 0.0, []
    for _ in range(size):
        clock += rng.choice([0.0, 0.5, 1.0, 2.0])
        start = clock if ordered else rng.choice([0.0, 0.5, 1.0, 2.0, 3.0, 5.0]) * size / 4
        locks = [(f"t{rng.randrange(3)}", rng.choice([AE, "ShareLock"]))] * rng.randrange(3)
        trace.append(
            statement(start, rng.choice([0.0, 0.5, 1.5]), locks, autocommit=rng.random() < 0.2)
        )
    horizon = max(clock, size * 1.25) + 2
    commits = [
        rng.choice([0.5, 1.0, 2.0]) * rng.randrange(int(horizon) + 1) for _ in range(size // 3)
    ]
    if not ordered:
        rng.shuffle(commits)
    return trace, commits


@pytest.mark.parametrize("ordered", [True, False])
def test_lock_spans_match_the_straightforward_definition(ordered: bool) -> None:
    rng = random.Random(14)
    for size in [*range(0, 12), *rng.sample(range(12, 60), 10), 400]:
        for _ in range(20 if size < 100 else 2):
            trace, commits = synthetic_trace(rng, size, ordered=ordered)
            assert lock_spans(trace, commits) == reference_lock_spans(trace, commits), size


def test_only_statements_outside_migration_files_can_be_bookkeeping() -> None:
    raw = [
        record("ALTER TABLE accounts ADD COLUMN note text -- alembic_version", locks=[["a", AE]]),
        record("UPDATE alembic_version SET version_num='0002'", bookkeeping=True),
        record("UPDATE alembic_version SET version_num='0002'", path=None, bookkeeping=True),
    ]
    trace = traced_statements(raw, {MIGRATION: "0002"})
    assert [s.sql for s in trace] == [raw[0]["sql"], raw[1]["sql"]]
    assert trace[0].locks == [("a", AE)]


def test_the_version_table_is_matched_by_name_not_by_mention() -> None:
    env_statements = [
        "ALTER TABLE accounts ADD COLUMN note text -- alembic_version",
        "UPDATE alembic_version SET version_num='0002'; ALTER TABLE accounts DROP COLUMN a",
        "UPDATE alembic_version_backup SET v = 1",
        "INSERT INTO alembic_version (version_num) VALUES ('0001')",
    ]
    raw = [record(sql, path=None, line=None) for sql in env_statements]
    kept = [s.sql for s in traced_statements(raw, {})]
    assert kept == env_statements[:3]


def test_a_configured_version_table_is_bookkeeping_under_its_own_name() -> None:
    writes = [
        'CREATE TABLE meta."Versions" (version_num VARCHAR(32) NOT NULL)',
        "DELETE FROM Versions WHERE versions.version_num = '0001'",
        "UPDATE alembic_version SET version_num='0002'",
    ]
    raw = [record(sql, path=None, line=None) for sql in writes]
    assert [s.sql for s in traced_statements(raw, {}, "meta.Versions")] == writes[2:]


def test_malformed_fields_are_ignored_and_counted() -> None:
    raw = [
        record("ALTER TABLE a ADD x int", locks=[1, ["a", AE], ["b"]]),
        record("ALTER TABLE b ADD x int", start="a", duration=float("nan")),
        record("ALTER TABLE c ADD x int", path=["p"], line=True),
        record("ALTER TABLE d ADD x int", rewritten=5, lock_timeout=0, autocommit="yes"),
        record("ALTER TABLE e ADD x int", rewritten=["e", 7], error=["boom"]),
        record("ALTER TABLE f ADD x int", locks={"a": AE}),
    ]
    trace = read_trace(raw, {MIGRATION: "0002"})
    assert trace.malformed == len(raw)
    a, b, c, d, e, f = trace.statements
    assert a.locks == [("a", AE)]
    assert (b.start_s, b.duration_s) == (0.0, 0.0)
    assert (c.path, c.line, c.revision) == (None, None, None)
    assert (d.rewritten, d.lock_timeout, d.autocommit) == ([], None, False)
    assert (e.rewritten, e.error) == (["e"], None)
    assert f.locks == []


def test_records_without_sql_are_dropped_and_counted() -> None:
    raw: list[Any] = ["ALTER TABLE a", 5, None, {"sql": 3}, record("SET x = 1")]
    trace = read_trace(raw, {})
    assert [s.sql for s in trace.statements] == ["SET x = 1"]
    assert trace.malformed == 4


def test_well_formed_records_are_not_counted_as_malformed() -> None:
    raw = [record("ALTER TABLE a ADD x int", locks=[["a", AE]], rewritten=["a"], autocommit=True)]
    assert read_trace(raw, {}).malformed == 0
