"""Maintenance and partition statements that lock a whole existing table (or view) for long.

Each has a non-blocking form (CONCURRENTLY, NOT VALID) or belongs outside the migration.
Objects created earlier in the same stream are not reported: nobody uses them yet.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from bot.analysis.model import ActionKind, Family, Finding, RuleInfo, Severity, Statement
from bot.analysis.rule import Rule, Stage
from bot.analysis.rules.base import AUTOCOMMIT_HINT, actions_of, finding, tables_of
from bot.analysis.state import StreamState

if TYPE_CHECKING:
    from bot.analysis.options import AnalysisOptions, PgVersion

REQUIRE_CONCURRENT_PARTITION_DETACH = RuleInfo(
    id="require-concurrent-partition-detach",
    family=Family.LOCKING,
    default_severity=Severity.WARNING,
    summary="DETACH PARTITION without CONCURRENTLY (ACCESS EXCLUSIVE on the parent table)",
    explanation=(
        "A plain DETACH PARTITION takes an ACCESS EXCLUSIVE lock on the partitioned table: "
        "while it waits for running queries, every later query on any partition queues "
        "behind it. Since PostgreSQL 14, DETACH PARTITION ... CONCURRENTLY takes only a SHARE "
        "UPDATE EXCLUSIVE lock. It cannot run inside a transaction block: in Alembic use "
        "`with op.get_context().autocommit_block():`. Before 14, keep the lock wait short "
        "(a low lock_timeout, retried at a quiet time)."
    ),
)

SET_LOGGED_UNLOGGED = RuleInfo(
    id="set-logged-unlogged",
    family=Family.LOCKING,
    default_severity=Severity.ERROR,
    summary="ALTER TABLE ... SET LOGGED / SET UNLOGGED on an existing table (rewrite)",
    explanation=(
        "Changing a table between logged and unlogged rewrites the whole table and its "
        "indexes under an ACCESS EXCLUSIVE lock (no reads or writes); SET LOGGED also writes "
        "all of it to the WAL, which can flood replicas. An unlogged table is emptied after "
        "a crash and not replicated. Do it in a maintenance window, or create a new table "
        "with the wanted persistence and move the rows over in batches."
    ),
)

REFRESH_NON_CONCURRENTLY = RuleInfo(
    id="refresh-materialized-view-non-concurrently",
    family=Family.LOCKING,
    default_severity=Severity.WARNING,
    summary="REFRESH MATERIALIZED VIEW without CONCURRENTLY (blocks reads of the view)",
    explanation=(
        "A plain REFRESH MATERIALIZED VIEW holds an ACCESS EXCLUSIVE lock on the view while "
        "it recomputes it: every query reading the view waits. REFRESH MATERIALIZED VIEW "
        "CONCURRENTLY lets reads go on; it needs a UNIQUE index on the view (create one "
        "first). A migration is rarely the place to refresh at all: let the job that "
        "refreshes it on schedule do it."
    ),
)

VACUUM_FULL = RuleInfo(
    id="vacuum-full",
    family=Family.LOCKING,
    default_severity=Severity.ERROR,
    summary="VACUUM FULL of an existing table (rewrite under ACCESS EXCLUSIVE)",
    explanation=(
        "VACUUM FULL rewrites the whole table and its indexes into new files, holding an "
        "ACCESS EXCLUSIVE lock (no reads or writes) throughout, and needs free disk space for "
        "a full copy. Plain VACUUM (which autovacuum runs anyway) takes no blocking lock. To "
        "reclaim space online, use an extension such as pg_repack or pg_squeeze, outside the "
        "migration."
    ),
)

CLUSTER = RuleInfo(
    id="cluster",
    family=Family.LOCKING,
    default_severity=Severity.ERROR,
    summary="CLUSTER of an existing table (rewrite under ACCESS EXCLUSIVE)",
    explanation=(
        "CLUSTER rewrites the table in index order, holding an ACCESS EXCLUSIVE lock (no reads "
        "or writes) for the whole rewrite, and the order is not kept for later writes. Use "
        "pg_repack's --order-by outside the migration to reorder a table online."
    ),
)

REINDEX_NON_CONCURRENTLY = RuleInfo(
    id="reindex-non-concurrently",
    family=Family.LOCKING,
    default_severity=Severity.ERROR,
    summary="REINDEX without CONCURRENTLY of an existing index or table",
    explanation=(
        "A plain REINDEX blocks writes to the table for the whole rebuild, and queries that "
        "would use the index being rebuilt wait too (ACCESS EXCLUSIVE on the index). Since "
        "PostgreSQL 12, REINDEX ... CONCURRENTLY rebuilds without blocking them; it cannot run "
        "inside a transaction block, so in Alembic use "
        "`with op.get_context().autocommit_block():`. Before 12, build a new index "
        "concurrently and swap it in for the old one."
    ),
)

ADD_DOMAIN_CONSTRAINT_VALIDATED = RuleInfo(
    id="add-domain-constraint-validated",
    family=Family.LOCKING,
    default_severity=Severity.ERROR,
    summary="ALTER DOMAIN ... ADD CONSTRAINT without NOT VALID, or SET NOT NULL",
    explanation=(
        "Adding a constraint to a domain (or SET NOT NULL) checks every column of every "
        "table that uses the domain, holding a lock that blocks writes to those tables for "
        "the whole scan. Add the constraint NOT VALID (new values are checked at once), then "
        "ALTER DOMAIN ... VALIDATE CONSTRAINT in a later transaction, which lets writes go on."
    ),
)


def check_detach_partition(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in actions_of(stmt, ActionKind.DETACH_PARTITION):
        # FINALIZE takes only SHARE UPDATE EXCLUSIVE: it completes a concurrent detach
        finalize = action.detail == "FINALIZE"
        if action.concurrently or finalize or not state.is_existing_table(action.table):
            continue
        yield finding(
            REQUIRE_CONCURRENT_PARTITION_DETACH,
            stmt,
            f"DETACH PARTITION {action.name} without CONCURRENTLY takes an ACCESS EXCLUSIVE "
            f"lock on {action.table}",
            advice=_detach_advice(action.table, action.name, options.pg_version),
        )


def _detach_advice(table: str | None, partition: str | None, version: PgVersion | None) -> str:
    if _before(version, 14):
        return (
            f"PostgreSQL {version} has no DETACH PARTITION ... CONCURRENTLY (it came in 14). "
            f"Keep the wait for the lock short and retry at a quiet time:\n"
            f"SET lock_timeout = '2s';\n"
            f"ALTER TABLE {table} DETACH PARTITION {partition};\n"
            f"-- or upgrade the server to 14 or later first"
        )
    return (
        f"-- PostgreSQL 14 and later, outside the transaction:\n"
        f"{AUTOCOMMIT_HINT}\n"
        f'    op.execute("ALTER TABLE {table} DETACH PARTITION {partition} CONCURRENTLY")'
    )


def _before(version: PgVersion | None, major: int) -> bool:
    """The target server is known to be older than `major` (unknown: a current one)."""
    return version is not None and version.major < major


def check_set_logged(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in stmt.actions:
        if action.kind not in _PERSISTENCE or not state.is_existing_table(action.table):
            continue
        yield finding(
            SET_LOGGED_UNLOGGED,
            stmt,
            f"SET {_PERSISTENCE[action.kind]} rewrites {action.table} and its indexes under "
            f"ACCESS EXCLUSIVE",
            advice=(
                "Run it in a maintenance window, or create a new table with the wanted "
                "persistence, copy the rows in batches, and swap the names."
            ),
        )


_PERSISTENCE = {ActionKind.SET_LOGGED: "LOGGED", ActionKind.SET_UNLOGGED: "UNLOGGED"}


def check_refresh(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in actions_of(stmt, ActionKind.REFRESH_MATERIALIZED_VIEW):
        if action.concurrently or state.is_new_object("view", action.name):
            continue
        yield finding(
            REFRESH_NON_CONCURRENTLY,
            stmt,
            f"REFRESH MATERIALIZED VIEW {action.name} without CONCURRENTLY blocks every read "
            f"of the view until it is recomputed",
            advice=(
                f"-- needs a UNIQUE index on the view:\n"
                f"REFRESH MATERIALIZED VIEW CONCURRENTLY {action.name};"
            ),
        )


def check_vacuum_full(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in actions_of(stmt, ActionKind.VACUUM_FULL):
        tables = tables_of(action)
        existing = [t for t in tables if state.is_existing_table(t)]
        if tables and not existing:
            continue
        what = ", ".join(existing) if existing else "every table of the database"
        yield finding(
            VACUUM_FULL,
            stmt,
            f"VACUUM FULL rewrites {what} under ACCESS EXCLUSIVE (no reads or writes)",
            advice=(
                "Leave space reclamation to autovacuum, or run pg_repack outside the "
                "migration, e.g.: pg_repack --table <table> <database>"
            ),
        )


def check_cluster(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in actions_of(stmt, ActionKind.CLUSTER):
        if action.table is not None and not state.is_existing_table(action.table):
            continue
        what = action.table or "every previously clustered table"
        yield finding(
            CLUSTER,
            stmt,
            f"CLUSTER rewrites {what} under ACCESS EXCLUSIVE (no reads or writes)",
            advice=(
                "Reorder the table online outside the migration instead, e.g.: "
                "pg_repack --table <table> --order-by <columns> <database>"
            ),
        )


def check_reindex(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in actions_of(stmt, ActionKind.REINDEX):
        if action.concurrently:
            continue
        if action.table is not None and not state.is_existing_table(action.table):
            continue
        if action.name is not None and state.is_new_index(action.name):
            continue
        target = f"TABLE {action.table}" if action.table else f"{action.detail} {action.name}"
        if _before(options.pg_version, 12):
            advice = _swap_advice(action.name if action.detail == "INDEX" else None, options)
        else:
            advice = (
                f"-- PostgreSQL 12 and later, outside the transaction:\n"
                f"{AUTOCOMMIT_HINT}\n"
                f'    op.execute("REINDEX {action.detail or "TABLE"} CONCURRENTLY '
                f'{action.table or action.name}")'
            )
        yield finding(
            REINDEX_NON_CONCURRENTLY,
            stmt,
            f"REINDEX {target} without CONCURRENTLY blocks writes for the whole rebuild",
            advice=advice,
        )


def _swap_advice(index: str | None, options: AnalysisOptions) -> str:
    """Before 12 there is no REINDEX CONCURRENTLY: build a copy concurrently and swap it in,
    for the index named or each index of the table."""
    name = index or "<index>"
    each = "" if index else "-- for each index to rebuild:\n"
    return (
        f"PostgreSQL {options.pg_version} has no REINDEX CONCURRENTLY (it came in 12): build "
        f"a new index concurrently and swap it in, outside the transaction:\n{each}"
        f"{AUTOCOMMIT_HINT}\n"
        f'    op.execute("CREATE INDEX CONCURRENTLY {name}_new ON <table> (<its columns>)")\n'
        f'    op.execute("DROP INDEX CONCURRENTLY {name}")\n'
        f'    op.execute("ALTER INDEX {name}_new RENAME TO {name}")\n'
        f"-- an index behind a primary key or unique constraint is swapped with\n"
        f"-- ALTER TABLE <table> DROP CONSTRAINT ..., ADD CONSTRAINT ... USING INDEX {name}_new"
    )


def check_domain_constraint(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in actions_of(stmt, ActionKind.ALTER_DOMAIN):
        if action.detail == "ADD CONSTRAINT" and not action.not_valid:
            advice = (
                f"{stmt.sql.strip().rstrip(';')} NOT VALID;\n"
                f"-- then, in a later transaction:\n"
                f"ALTER DOMAIN {action.name} VALIDATE CONSTRAINT <name>;"
            )
        elif action.detail == "SET NOT NULL":
            advice = (
                f"ALTER DOMAIN {action.name} ADD CONSTRAINT {action.name}_not_null "
                f"CHECK (VALUE IS NOT NULL) NOT VALID;\n"
                f"-- then, in a later transaction:\n"
                f"ALTER DOMAIN {action.name} VALIDATE CONSTRAINT {action.name}_not_null;"
            )
        else:
            continue
        yield finding(
            ADD_DOMAIN_CONSTRAINT_VALIDATED,
            stmt,
            f"ALTER DOMAIN {action.name} {action.detail} checks every column of domain "
            f"{action.name} in every table, blocking writes to them",
            advice=advice,
        )


RULES: tuple[Rule, ...] = (
    Rule(
        REQUIRE_CONCURRENT_PARTITION_DETACH,
        Stage.SQL,
        "DETACH ... CONCURRENTLY (14+) outside a transaction; before 14, a short lock_timeout",
        judges=(ActionKind.DETACH_PARTITION,),
        check=check_detach_partition,
    ),
    Rule(
        SET_LOGGED_UNLOGGED,
        Stage.SQL,
        "create a new table with the wanted persistence, copy in batches, and swap",
        judges=tuple(_PERSISTENCE),
        check=check_set_logged,
    ),
    Rule(
        REFRESH_NON_CONCURRENTLY,
        Stage.SQL,
        "REFRESH MATERIALIZED VIEW CONCURRENTLY (needs a unique index)",
        judges=(ActionKind.REFRESH_MATERIALIZED_VIEW,),
        check=check_refresh,
    ),
    Rule(
        VACUUM_FULL,
        Stage.SQL,
        "pg_repack, or plain VACUUM, outside the migration",
        judges=(ActionKind.VACUUM_FULL,),
        check=check_vacuum_full,
    ),
    Rule(
        CLUSTER,
        Stage.SQL,
        "pg_repack, outside the migration",
        judges=(ActionKind.CLUSTER,),
        check=check_cluster,
    ),
    Rule(
        REINDEX_NON_CONCURRENTLY,
        Stage.SQL,
        "REINDEX ... CONCURRENTLY (12+) outside a transaction; before 12 a new index, swapped in",
        judges=(ActionKind.REINDEX,),
        check=check_reindex,
    ),
    Rule(
        ADD_DOMAIN_CONSTRAINT_VALIDATED,
        Stage.SQL,
        "ALTER DOMAIN ... ADD CONSTRAINT ... NOT VALID, then VALIDATE it in its own transaction",
        judges=(ActionKind.ALTER_DOMAIN,),
        check=check_domain_constraint,
    ),
)
