"""Read a `SchemaSnapshot` from the catalogs of a live database: one query per object type.

Only user schemas count (not pg_catalog, information_schema, pg_toast, temporary schemas),
and objects that belong to an extension are left out (the extension itself is listed).
The migration cannot hide anything from this: it reads the catalogs, not what the child said.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import psycopg

from bot.sandbox.schema import (
    Column,
    Constraint,
    Index,
    Policy,
    SchemaSnapshot,
    Sequence,
    Table,
    Trigger,
    View,
)

_USER_SCHEMA = """
    {n}.nspname NOT IN ('pg_catalog', 'information_schema')
    AND {n}.nspname NOT LIKE 'pg\\_toast%' AND {n}.nspname NOT LIKE 'pg\\_temp\\_%'
"""
_NOT_EXTENSION_MEMBER = """
    NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '{catalog}'::regclass
                AND e.objid = {oid} AND e.deptype = 'e')
"""


def _user_relations(kinds: str) -> str:
    """A CTE of the user relations of the given relkinds: oid, schema, name, qualified."""
    return f"""
    WITH rel AS (
        SELECT c.oid, n.nspname AS schema, c.relname AS name,
               n.nspname || '.' || c.relname AS qualified, c.relkind, c.relispartition,
               c.relrowsecurity, c.relforcerowsecurity
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ({kinds}) AND {_USER_SCHEMA.format(n="n")}
          AND {_NOT_EXTENSION_MEMBER.format(catalog="pg_class", oid="c.oid")}
    )"""


_TABLES_QUERY = (
    _user_relations("'r', 'p'")
    + """
    SELECT rel.schema, rel.name, rel.relrowsecurity, rel.relforcerowsecurity,
           rel.relkind = 'p',
           (SELECT pn.nspname || '.' || p.relname FROM pg_inherits i
              JOIN pg_class p ON p.oid = i.inhparent
              JOIN pg_namespace pn ON pn.oid = p.relnamespace
            WHERE i.inhrelid = rel.oid AND rel.relispartition)
    FROM rel ORDER BY rel.qualified
"""
)

_COLUMNS_QUERY = (
    _user_relations("'r', 'p'")
    + """
    SELECT rel.qualified, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
           pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated
    FROM rel
    JOIN pg_attribute a ON a.attrelid = rel.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    ORDER BY rel.qualified, a.attnum
"""
)

_INDEXES_QUERY = (
    _user_relations("'r', 'p', 'm'")
    + """
    SELECT rel.schema || '.' || ic.relname, rel.qualified, pg_get_indexdef(i.indexrelid),
           i.indisvalid, i.indisunique, i.indisprimary,
           ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true)
                 FROM generate_series(1, i.indnkeyatts) AS k ORDER BY k)
    FROM rel
    JOIN pg_index i ON i.indrelid = rel.oid
    JOIN pg_class ic ON ic.oid = i.indexrelid
    ORDER BY 1
"""
)

_CONSTRAINTS_QUERY = (
    _user_relations("'r', 'p'")
    + """
    SELECT rel.qualified, con.conname, con.contype::text, pg_get_constraintdef(con.oid),
           con.convalidated,
           ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, pos)
                 JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
                 ORDER BY k.pos),
           (SELECT fn.nspname || '.' || f.relname FROM pg_class f
              JOIN pg_namespace fn ON fn.oid = f.relnamespace WHERE f.oid = con.confrelid),
           ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, pos)
                 JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum
                 ORDER BY k.pos)
    FROM rel JOIN pg_constraint con ON con.conrelid = rel.oid
    ORDER BY rel.qualified, con.conname
"""
)

_SEQUENCES_QUERY = (
    _user_relations("'S'")
    + """
    SELECT rel.qualified, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement,
           s.seqmin, s.seqmax, s.seqcycle,
           (SELECT tn.nspname || '.' || t.relname || '.' || a.attname
            FROM pg_depend d
            JOIN pg_class t ON t.oid = d.refobjid
            JOIN pg_namespace tn ON tn.oid = t.relnamespace
            JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
            WHERE d.classid = 'pg_class'::regclass AND d.objid = rel.oid
              AND d.refclassid = 'pg_class'::regclass AND d.refobjsubid > 0
              AND d.deptype IN ('a', 'i')
            LIMIT 1)
    FROM rel JOIN pg_sequence s ON s.seqrelid = rel.oid
    ORDER BY rel.qualified
"""
)

_ENUMS_QUERY = f"""
    SELECT n.nspname || '.' || t.typname,
           ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid
                 ORDER BY e.enumsortorder)
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE t.typtype = 'e' AND {_USER_SCHEMA.format(n="n")}
      AND {_NOT_EXTENSION_MEMBER.format(catalog="pg_type", oid="t.oid")}
    ORDER BY 1
"""

_POLICIES_QUERY = (
    _user_relations("'r', 'p'")
    + """
    SELECT rel.qualified, p.polname,
           CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                         WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
           ARRAY(SELECT CASE WHEN u.oid = 0 THEN 'public' ELSE r.rolname::text END
                 FROM unnest(p.polroles) AS u(oid)
                 LEFT JOIN pg_roles r ON r.oid = u.oid
                 ORDER BY 1),
           pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid),
           p.polpermissive
    FROM rel JOIN pg_policy p ON p.polrelid = rel.oid
    ORDER BY rel.qualified, p.polname
"""
)

_TRIGGERS_QUERY = (
    _user_relations("'r', 'p', 'v', 'f'")
    + """
    SELECT rel.qualified, t.tgname, pg_get_triggerdef(t.oid)
    FROM rel JOIN pg_trigger t ON t.tgrelid = rel.oid AND NOT t.tgisinternal
    ORDER BY rel.qualified, t.tgname
"""
)

_VIEWS_QUERY = (
    _user_relations("'v', 'm'")
    + """
    SELECT rel.qualified, pg_get_viewdef(rel.oid, true), rel.relkind = 'm'
    FROM rel ORDER BY rel.qualified
"""
)

_EXTENSIONS_QUERY = "SELECT extname, extversion FROM pg_extension ORDER BY extname"

_CONSTRAINT_TYPES = {
    "p": "primary key",
    "f": "foreign key",
    "u": "unique",
    "c": "check",
    "x": "exclusion",
    "t": "constraint trigger",
    "n": "not null",
}
_IDENTITY = {"a": "always", "d": "by default"}

Row = tuple[Any, ...]


def take_snapshot(conn: psycopg.Connection[Any]) -> SchemaSnapshot:
    """The schema of the connection's database, read from pg_catalog in one transaction
    (a savepoint when one is already open), so the snapshot is consistent."""
    with conn.transaction():
        rows = {name: _fetch(conn, query) for name, query in _QUERIES.items()}
    return SchemaSnapshot(
        tables=_tables(rows["tables"], rows["columns"]),
        indexes=_indexes(rows["indexes"]),
        constraints=_constraints(rows["constraints"]),
        sequences=_sequences(rows["sequences"]),
        enums={str(name): tuple(labels) for name, labels in rows["enums"]},
        policies=_policies(rows["policies"]),
        triggers=_triggers(rows["triggers"]),
        views=_views(rows["views"]),
        extensions={str(name): str(version) for name, version in rows["extensions"]},
    )


_QUERIES = {
    "tables": _TABLES_QUERY,
    "columns": _COLUMNS_QUERY,
    "indexes": _INDEXES_QUERY,
    "constraints": _CONSTRAINTS_QUERY,
    "sequences": _SEQUENCES_QUERY,
    "enums": _ENUMS_QUERY,
    "policies": _POLICIES_QUERY,
    "triggers": _TRIGGERS_QUERY,
    "views": _VIEWS_QUERY,
    "extensions": _EXTENSIONS_QUERY,
}


_STORAGE_QUERY = (
    _user_relations("'r', 'm'")
    + """
    SELECT rel.qualified, rel.oid, c.relfilenode
    FROM rel JOIN pg_class c ON c.oid = rel.oid
    """
)


def table_storage(conn: psycopg.Connection[Any]) -> dict[str, tuple[int, int]]:
    """Each user table's (oid, relfilenode), by qualified name: the parent's own measure of
    a rewrite (the storage of the same table replaced), whatever the trace says."""
    return {str(name): (int(oid), int(node)) for name, oid, node in _fetch(conn, _STORAGE_QUERY)}


def _fetch(conn: psycopg.Connection[Any], query: str) -> list[Row]:
    # Each query is a fixed string of this module: nothing user-given is interpolated.
    return conn.execute(query, prepare=False).fetchall()


def _tables(table_rows: list[Row], column_rows: list[Row]) -> dict[str, Table]:
    columns: dict[str, list[Column]] = defaultdict(list)
    for table, name, type_, nullable, default, identity, generated in column_rows:
        columns[table].append(
            Column(
                name=name,
                type=type_,
                nullable=nullable,
                default=None if generated else default,
                identity=_IDENTITY.get(identity),
                generated=default if generated else None,
            )
        )
    tables = {}
    for schema, name, rls_enabled, rls_forced, partitioned, partition_of in table_rows:
        table = Table(
            schema=schema,
            name=name,
            columns=tuple(columns[f"{schema}.{name}"]),
            rls_enabled=rls_enabled,
            rls_forced=rls_forced,
            partitioned=partitioned,
            partition_of=partition_of,
        )
        tables[table.qualified] = table
    return tables


def _indexes(rows: list[Row]) -> dict[str, Index]:
    return {
        name: Index(name, table, definition, valid, unique, primary, tuple(keys))
        for name, table, definition, valid, unique, primary, keys in rows
    }


def _constraints(rows: list[Row]) -> dict[str, Constraint]:
    constraints = {}
    for table, name, type_, definition, validated, columns, ref_table, ref_columns in rows:
        constraint = Constraint(
            table=table,
            name=name,
            type=_CONSTRAINT_TYPES.get(type_) or str(type_),
            definition=definition,
            validated=validated,
            columns=tuple(columns),
            referenced_table=ref_table,
            referenced_columns=tuple(ref_columns),
        )
        constraints[constraint.key] = constraint
    return constraints


def _sequences(rows: list[Row]) -> dict[str, Sequence]:
    return {
        name: Sequence(name, data_type, start, increment, minimum, maximum, cycle, owned_by)
        for name, data_type, start, increment, minimum, maximum, cycle, owned_by in rows
    }


def _policies(rows: list[Row]) -> dict[str, Policy]:
    policies = {}
    for table, name, command, roles, using, with_check, permissive in rows:
        policy = Policy(table, name, command, tuple(roles), using, with_check, permissive)
        policies[policy.key] = policy
    return policies


def _triggers(rows: list[Row]) -> dict[str, Trigger]:
    triggers = {}
    for table, name, definition in rows:
        trigger = Trigger(table, name, definition)
        triggers[trigger.key] = trigger
    return triggers


def _views(rows: list[Row]) -> dict[str, View]:
    return {name: View(name, definition, materialized) for name, definition, materialized in rows}
