"""New indexes after the upgrade: valid (`invalid-index`) and used by the planner
(`index-unusable`), both read by the parent as the sandbox's own role."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import psycopg

from bot.analysis.rules import sandbox as rules
from bot.analysis.sandbox_model import TracedStatement
from bot.sandbox.schema import SchemaSnapshot, new_indexes
from bot.sandbox.session import Run, identifier


def check_indexes(
    run: Run, owner: psycopg.Connection[Any], base: SchemaSnapshot, head: SchemaSnapshot
) -> list[str]:
    problems = []
    added = new_indexes(base, head)
    unusable = _unusable_indexes(owner, [(i.name, i.table) for i in added if i.valid])
    for index in added:
        name = index.name
        if not index.valid:
            run.fail(
                "invalid-index",
                f"index {name} is invalid (indisvalid = false) after the upgrade",
                statement_creating(run.report.trace, name),
            )
            problems.append(f"index {name} invalid")
        elif name in unusable:
            run.fail(
                "index-unusable",
                f"the planner did not use index {name} for a query on its leading column",
                statement_creating(run.report.trace, name),
            )
            problems.append(f"index {name} not used")
    return problems


def statement_creating(trace: list[TracedStatement], index: str) -> dict[str, Any] | None:
    short = rules.bare(index).lower()
    for statement in trace:
        if "index" in statement.sql.lower() and short in statement.sql.lower():
            return {"sql": statement.sql, "path": statement.path, "line": statement.line}
    return None


# Access methods whose operator classes answer `=` on the leading column; a GIN, GiST,
# BRIN or SP-GiST index serves other operators (@>, @@, &&, ...) and is not judged by this.
_EQUALITY_METHODS = ("btree", "hash")
# The shape of every index asked about, in one query: (schema, name) pairs as two arrays.
_INDEX_SHAPES = """
SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), am.amname,
       pg_get_expr(i.indpred, i.indrelid)
FROM unnest(%s::text[], %s::text[]) AS asked(nspname, relname)
JOIN pg_namespace n ON n.nspname = asked.nspname
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = asked.relname
JOIN pg_index i ON i.indexrelid = c.oid
JOIN pg_am am ON am.oid = c.relam
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
"""


def _unusable_indexes(owner: psycopg.Connection[Any], indexes: list[tuple[str, str]]) -> set[str]:
    """The indexes (name, table) the planner does not use: ANALYZE their tables (once, all
    together), then EXPLAIN an equality lookup on each one's leading column (inside its
    predicate, for a partial index) with sequential scans off: the plan must scan the index.
    The shapes in one query; the ANALYZE and the EXPLAINs in one transaction, pipelined where
    libpq can (one round trip for the lot).

    The compared value is an opaque parameter of no table (`(SELECT NULL::type)`): a
    subquery reading the table could itself use the index and pass the check."""
    if not indexes:
        return set()
    names: list[tuple[str, str]] = []
    for index, _ in indexes:
        schema, name = (part.strip('"') for part in index.split(".", 1))
        names.append((schema, name))
    shapes = {
        (schema, name): shape
        for schema, name, *shape in owner.execute(
            _INDEX_SHAPES, ([n[0] for n in names], [n[1] for n in names])
        ).fetchall()
    }
    explains: list[tuple[str, str, psycopg.sql.Composed]] = []
    tables: list[str] = []
    for (index, table), key in zip(indexes, names, strict=True):
        shape = shapes.get(key)
        if shape is None:  # an expression index: no plain leading column to query
            continue
        column, column_type, method, predicate = shape
        if method not in _EQUALITY_METHODS:
            continue
        condition = psycopg.sql.SQL("{} = (SELECT NULL::{})").format(
            psycopg.sql.Identifier(column), psycopg.sql.SQL(column_type)
        )
        if predicate:
            condition = psycopg.sql.SQL("{} AND ({})").format(condition, psycopg.sql.SQL(predicate))
        query = psycopg.sql.SQL("EXPLAIN (FORMAT JSON) SELECT * FROM {} WHERE {}").format(
            identifier(table), condition
        )
        explains.append((index, key[1], query))
        if table not in tables:
            tables.append(table)
    if not explains:
        return set()
    analyze = psycopg.sql.SQL("ANALYZE {}").format(
        psycopg.sql.SQL(", ").join(identifier(table) for table in tables)
    )
    pipelined = psycopg.Pipeline.is_supported()
    with ExitStack() as stack:
        if pipelined:
            stack.enter_context(owner.pipeline())
        with owner.transaction():
            owner.execute(analyze)
            owner.execute("SET LOCAL enable_seqscan = off")
            cursors = [owner.execute(query) for _, _, query in explains]
    plans = [cursor.fetchone() for cursor in cursors]
    return {
        index
        for (index, name, _), plan in zip(explains, plans, strict=True)
        if plan is None or name not in _indexes_scanned(plan[0])
    }


def _indexes_scanned(plan: Any) -> set[str]:
    """Every "Index Name" in an EXPLAIN (FORMAT JSON) plan."""
    if isinstance(plan, list):
        return set().union(*(_indexes_scanned(item) for item in plan))
    if not isinstance(plan, dict):
        return set()
    found = {plan["Index Name"]} if "Index Name" in plan else set()
    return found.union(*(_indexes_scanned(value) for value in plan.values()))
