"""Seed a few rows per table, and checksum tables to show whether a rollback kept them.

Over 400 lines: a generator per column type, and checksums sharing that type knowledge.

Values are generated from the column types, parents before children (foreign-key values
come from the rows already inserted in the referenced table). A table whose insert fails
(a CHECK the generator cannot satisfy, a trigger that refuses) is noted, not fatal: each
table is inserted under its own savepoint. Use a session as the sandbox's own role (never
an admin's: inserting fires the migrations' triggers, defaults and policies), with BYPASSRLS
for the while, so that FORCE ROW LEVEL SECURITY hides no row from the checksums.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

from bot.sandbox.schema import DEFAULT_IGNORED_TABLES, Constraint, SchemaSnapshot, Table

TextRow = dict[str, str | None]  # column -> value as text, as RETURNING ...::text gave it

_UUID_NAMESPACE = uuid.UUID("6f1c6a53-52bb-4a4a-9c39-5b1e2c6a7d10")
_BASE_DAY = date(2024, 1, 1)

_TYPES_QUERY = """
    SELECT n.nspname || '.' || c.relname, a.attname, bt.typname, bt.typcategory,
           CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END,
           ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = bt.oid
                 ORDER BY e.enumsortorder)
    FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_type t ON t.oid = a.atttypid
    JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
    WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
"""


@dataclass(frozen=True)
class SeedReport:
    seeded: dict[str, int]  # table -> rows inserted
    failed: dict[str, str]  # table -> PostgreSQL's error message

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TableChecksum:
    rows: int
    md5: str  # of the rows' text, in a fixed order


@dataclass(frozen=True)
class DataLoss:
    table: str
    rows_before: int
    rows_after: int
    changed: bool  # the contents differ although no row is missing (e.g. a column's data)
    missing: bool = False  # the table is gone: every row is lost

    @property
    def rows_lost(self) -> int:
        return max(0, self.rows_before - self.rows_after)

    def describe(self) -> str:
        """What the rollback did to the seeded rows, for the finding's message."""
        if self.missing:
            return (
                f"table {self.table} is missing after the rollback: "
                f"all {self.rows_before} seeded rows lost"
            )
        if self.rows_lost:
            return (
                f"table {self.table}: {self.rows_lost} of {self.rows_before} seeded rows are "
                "gone after the rollback"
            )
        return (
            f"table {self.table}: the {self.rows_before} seeded rows came back changed "
            "(a column's data was lost)"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"rows_lost": self.rows_lost}


@dataclass(frozen=True)
class _ColumnType:
    base: str  # the base type's pg_type.typname (domains resolved)
    category: str  # pg_type.typcategory
    typmod: int
    labels: tuple[str, ...]  # enum labels


# -- seeding ------------------------------------------------------------------------------


def seed_rows(
    conn: psycopg.Connection[Any],
    snapshot: SchemaSnapshot,
    rows_per_table: int = 3,
    *,
    ignore_tables: Iterable[str] = DEFAULT_IGNORED_TABLES,
) -> SeedReport:
    """Insert `rows_per_table` rows into every table of `snapshot` (partitions excepted:
    rows go through their parent), in one transaction with a savepoint per table."""
    ignored = set(ignore_tables)
    tables = [
        t
        for t in snapshot.tables.values()
        if t.partition_of is None and t.name not in ignored and t.qualified not in ignored
    ]
    foreign_keys = _foreign_keys(snapshot)
    distinct = _distinct_columns(snapshot)
    inserted: dict[str, list[TextRow]] = {}
    failed: dict[str, str] = {}
    with conn.transaction():
        types = _column_types(conn)
        for table in _insert_order(tables, foreign_keys):
            seeder = _TableSeeder(table, types, foreign_keys, distinct, inserted, rows_per_table)
            try:
                inserted[table.qualified] = seeder.insert(conn)
            except psycopg.Error as error:
                if conn.broken:
                    raise
                failed[table.qualified] = _error_text(error)
    return SeedReport({name: len(rows) for name, rows in inserted.items()}, failed)


class _TableSeeder:
    """Generates and inserts one table's rows; a second, leaner attempt (nullable columns
    left NULL, which passes most CHECKs) when the first is refused."""

    def __init__(
        self,
        table: Table,
        types: Mapping[tuple[str, str], _ColumnType],
        foreign_keys: Mapping[str, list[Constraint]],
        distinct: set[tuple[str, str]],
        inserted: Mapping[str, list[TextRow]],
        rows: int,
    ) -> None:
        self.table = table
        self.types = types
        self.distinct = distinct
        self.rows = rows
        self.references = _referenced_values(table, foreign_keys.get(table.qualified, []), inserted)

    def insert(self, conn: psycopg.Connection[Any]) -> list[TextRow]:
        try:
            with conn.transaction():
                return self._insert(conn, lean=False)
        except psycopg.Error:
            if conn.broken:
                raise
        with conn.transaction():
            return self._insert(conn, lean=True)

    def _insert(self, conn: psycopg.Connection[Any], *, lean: bool) -> list[TextRow]:
        columns = self._columns_to_fill(lean)
        params = [self._value(column, n) for n in range(1, self.rows + 1) for column in columns]
        result = conn.execute(self._query(columns), params).fetchall()
        names = [c.name for c in self.table.columns]
        return [dict(zip(names, row[: len(names)], strict=True)) for row in result]

    def _query(self, columns: list[str]) -> sql.Composed:
        """INSERT of `self.rows` rows filling `columns` (all placeholders), returning every
        column as text (and `true`, so a table without columns still returns a row)."""
        target = sql.Identifier(self.table.schema, self.table.name)
        returning = sql.SQL(", ").join(
            [sql.SQL("{}::text").format(sql.Identifier(c.name)) for c in self.table.columns]
            + [sql.SQL("true")]
        )
        if not columns:  # the database fills every column: rows of defaults
            return sql.SQL("INSERT INTO {} SELECT FROM generate_series(1, {}) RETURNING {}").format(
                target, sql.Literal(self.rows), returning
            )
        row = sql.SQL("({})").format(sql.SQL(", ").join([sql.Placeholder()] * len(columns)))
        return sql.SQL("INSERT INTO {} ({}) VALUES {} RETURNING {}").format(
            target,
            sql.SQL(", ").join(sql.Identifier(c) for c in columns),
            sql.SQL(", ").join([row] * self.rows),
            returning,
        )

    def _columns_to_fill(self, lean: bool) -> list[str]:
        """Foreign-key columns always; others unless the database fills them itself
        (default, identity, generated), and in the lean attempt only NOT NULL ones."""
        chosen = []
        for column in self.table.columns:
            if column.generated is not None or column.identity == "always":
                continue
            filled_by_database = column.default is not None or column.identity is not None
            if column.name in self.references or not (
                filled_by_database or (lean and column.nullable)
            ):
                chosen.append(column.name)
        return chosen

    def _value(self, column: str, n: int) -> str | None:
        if column in self.references:
            parents = self.references[column]
            return parents[(n - 1) % len(parents)] if parents else None
        column_type = self.types.get((self.table.qualified, column))
        if column_type is None:
            return None
        distinct = (self.table.qualified, column) in self.distinct
        return _generate(column_type, f"{self.table.qualified}.{column}", column, n, distinct)


def _referenced_values(
    table: Table, foreign_keys: list[Constraint], inserted: Mapping[str, list[TextRow]]
) -> dict[str, list[str | None]]:
    """For each FK column: the referenced column's values in the parent's seeded rows
    ([] when the parent has none, so the column is NULL)."""
    values: dict[str, list[str | None]] = {}
    for fk in foreign_keys:
        self_reference = fk.referenced_table == table.qualified
        parent_rows = [] if self_reference else inserted.get(fk.referenced_table or "", [])
        for column, referenced in zip(fk.columns, fk.referenced_columns, strict=False):
            values[column] = [row.get(referenced) for row in parent_rows]
    return values


def _generate(t: _ColumnType, key: str, column: str, n: int, distinct: bool) -> str | None:
    """A value of type `t` as text, different for each row number `n` (from 1)."""
    if t.category == "A":
        return "{}"
    if t.labels:
        return t.labels[(n - 1) % len(t.labels)] if distinct else t.labels[0]
    fixed = _FIXED_GENERATORS.get(t.base)
    if fixed is not None:
        return fixed(n)
    if t.base == "uuid":
        return str(uuid.uuid5(_UUID_NAMESPACE, f"{key}.{n}"))
    if t.base == "numeric":
        return _numeric(n, t.typmod)
    if t.base == "bit":
        return "1" * max(1, t.typmod)
    if t.base == "varbit":
        return "1" * (min(n, t.typmod) if t.typmod > 0 else n)
    if t.category == "S":
        return _text(f"{column}-{n}", n, t.typmod - 4 if t.typmod >= 4 else None)
    if t.category == "N":
        return str(n)
    if t.category == "R":
        return "empty"
    return None  # unknown type: left NULL (the insert fails if the column is NOT NULL)


def _day(n: int) -> date:
    return _BASE_DAY + timedelta(days=n)


_FIXED_GENERATORS: dict[str, Callable[[int], str]] = {
    "bool": lambda n: "true" if n % 2 else "false",
    "int2": str,
    "int4": str,
    "int8": str,
    "oid": str,
    "float4": lambda n: f"{n}.5",
    "float8": lambda n: f"{n}.5",
    "money": str,
    "date": lambda n: _day(n).isoformat(),
    "timestamp": lambda n: datetime.combine(_day(n), datetime.min.time()).isoformat(" "),
    "timestamptz": lambda n: datetime.combine(_day(n), datetime.min.time()).isoformat(" ") + "+00",
    "time": lambda n: f"{n % 24:02d}:00:00",
    "timetz": lambda n: f"{n % 24:02d}:00:00+00",
    "interval": lambda n: f"{n} days",
    "json": lambda n: f'{{"n": {n}}}',
    "jsonb": lambda n: f'{{"n": {n}}}',
    "bytea": lambda n: f"\\x{n % 256:02x}",
    "inet": lambda n: f"10.0.{n // 256 % 256}.{n % 256}",
    "cidr": lambda n: f"10.{n // 256 % 256}.{n % 256}.0/24",
    "macaddr": lambda n: f"08:00:2b:00:{n // 256 % 256:02x}:{n % 256:02x}",
    "macaddr8": lambda n: f"08:00:2b:ff:fe:00:{n // 256 % 256:02x}:{n % 256:02x}",
    "xml": lambda n: f"<n>{n}</n>",
    "tsvector": lambda n: f"word{n}",
    "point": lambda n: f"({n},{n})",
}


def _numeric(n: int, typmod: int) -> str:
    """n, or n scaled down when numeric(p, s) leaves too few integer digits."""
    if typmod < 4:
        return str(n)
    precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
    if precision - scale >= len(str(n)):
        return str(n)
    return str(Decimal(n).scaleb(-scale))


def _text(value: str, n: int, length: int | None) -> str:
    if length is None or len(value) <= length:
        return value
    return str(n)[-length:] if len(str(n)) <= length else value[:length]


# -- ordering and constraints ------------------------------------------------------------------


def _foreign_keys(snapshot: SchemaSnapshot) -> dict[str, list[Constraint]]:
    by_table: dict[str, list[Constraint]] = {}
    for constraint in sorted(snapshot.constraints.values(), key=lambda c: c.key):
        if constraint.type == "foreign key" and constraint.referenced_table:
            by_table.setdefault(constraint.table, []).append(constraint)
    return by_table


def _distinct_columns(snapshot: SchemaSnapshot) -> set[tuple[str, str]]:
    """Columns in a unique index or constraint: every row needs its own value."""
    distinct = set()
    for index in snapshot.indexes.values():
        if index.unique:
            distinct |= {(index.table, column) for column in index.key_columns}
    for constraint in snapshot.constraints.values():
        if constraint.type in {"unique", "primary key", "exclusion"}:
            distinct |= {(constraint.table, column) for column in constraint.columns}
    return distinct


def _insert_order(tables: list[Table], foreign_keys: Mapping[str, list[Constraint]]) -> list[Table]:
    """Parents before children (by name among equals); tables in a cycle come last."""
    by_name = {table.qualified: table for table in tables}
    parents = {
        name: {
            fk.referenced_table
            for fk in foreign_keys.get(name, [])
            if fk.referenced_table in by_name and fk.referenced_table != name
        }
        for name in by_name
    }
    ordered: list[str] = []
    remaining = set(by_name)
    while remaining:
        ready = sorted(name for name in remaining if not parents[name] & remaining)
        ready = ready or [min(remaining)]  # a cycle: break it by name
        ordered += ready
        remaining -= set(ready)
    return [by_name[name] for name in ordered]


def _column_types(conn: psycopg.Connection[Any]) -> dict[tuple[str, str], _ColumnType]:
    rows = conn.execute(_TYPES_QUERY, prepare=False).fetchall()
    return {
        (table, column): _ColumnType(base, category, typmod, tuple(labels))
        for table, column, base, category, typmod, labels in rows
    }


def _error_text(error: psycopg.Error) -> str:
    return error.diag.message_primary or str(error).splitlines()[0]


# -- checksums ------------------------------------------------------------------------------

_EXISTING_TABLES = """
    SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND n.nspname || '.' || c.relname = ANY(%s)
"""
_CHECKSUM = """
    SELECT {name}, count(*),
           coalesce(md5(string_agg(ROW(r.*)::text, '|' ORDER BY ROW(r.*)::text COLLATE "C")),
                    md5(''))
    FROM {table} AS r
"""


def table_checksums(
    conn: psycopg.Connection[Any], tables: Iterable[str]
) -> dict[str, TableChecksum]:
    """Row count and md5 of the rows' text for each existing table of `tables`
    (schema-qualified names, as in a snapshot); tables that do not exist are left out."""
    existing = conn.execute(_EXISTING_TABLES, (sorted(set(tables)),)).fetchall()
    if not existing:
        return {}
    query = sql.SQL(" UNION ALL ").join(
        sql.SQL(_CHECKSUM).format(
            name=sql.Literal(f"{schema}.{name}"), table=sql.Identifier(schema, name)
        )
        for schema, name in sorted(existing)
    )
    rows = conn.execute(query).fetchall()
    return {str(name): TableChecksum(int(count), str(md5)) for name, count, md5 in rows}


def compare_checksums(
    before: Mapping[str, TableChecksum], after: Mapping[str, TableChecksum]
) -> list[DataLoss]:
    """The tables of `before` whose rows are not all intact in `after`, by name. A missing
    table loses every row; a column dropped and re-added keeps the count but not the md5."""
    losses = []
    for table, old in sorted(before.items()):
        new = after.get(table)
        if new is None:
            losses.append(DataLoss(table, old.rows, 0, changed=False, missing=True))
        elif new != old:
            changed = new.rows >= old.rows
            losses.append(DataLoss(table, old.rows, new.rows, changed=changed))
    return losses
