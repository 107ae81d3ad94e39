"""Row level security after the upgrade: enabled, has a policy, and really isolates tenants."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg
from psycopg import sql

from bot.analysis.sandbox_model import TracedStatement
from bot.sandbox.database import SandboxServer, reserved_name
from bot.sandbox.schema import SchemaSnapshot
from bot.sandbox.seed import seed_rows

Fail = Callable[[str, str, "dict[str, Any] | None"], None]

# Two tenants' values by the tenant column's type family.
_TENANTS: dict[str, tuple[str, str]] = {
    "int": ("1001", "1002"),
    "uuid": ("00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b"),
    "text": ("tenant-a", "tenant-b"),
}


@dataclass
class RlsSettings:
    tables: list[str] | Literal["all"] = field(default_factory=list)  # the tenant tables
    setting: str = "app.tenant_id"  # what the application sets per request
    column: str = "tenant_id"


def tenant_tables(schema: SchemaSnapshot, settings: RlsSettings) -> list[str]:
    names = [t for t in schema.tables if _bare(t) != "alembic_version"]
    if settings.tables == "all":
        return names
    wanted = {_bare(t) for t in settings.tables}
    return [t for t in names if _bare(t) in wanted]


def check_rls(
    admin: psycopg.Connection[Any],
    owner: psycopg.Connection[Any],
    schema: SchemaSnapshot,
    settings: RlsSettings,
    fail: Fail,
    trace: list[TracedStatement],
    *,
    server: SandboxServer,
) -> list[str]:
    """Findings through `fail`; returns one line per problem for the step's detail.

    `owner` is a session as the role that owns the tables: the rows and the reads of the
    isolation test run there, since they fire the migrations' own code (triggers, policies);
    `admin` only creates the reading role, whose name `server` holds for the check."""
    problems = []
    tables = tenant_tables(schema, settings)
    needed = any(_has_policy(schema, t) for t in tables)
    with _reader_role(server, admin, owner, needed=needed) as reader:
        for table in tables:
            where = _statement_touching(trace, table)
            if not schema.tables[table].rls_enabled:
                fail("rls-disabled", f"tenant table {table} has row level security disabled", where)
                problems.append(f"RLS disabled on {table}")
            elif not _has_policy(schema, table):
                fail("rls-no-policy", f"tenant table {table} has RLS enabled but no policy", where)
                problems.append(f"no policy on {table}")
            else:
                leak = _isolation_leak(owner, schema, table, settings, reader)
                if leak:
                    fail("tenant-isolation-broken", f"{table}: {leak}", where)
                    problems.append(f"tenant isolation broken on {table}")
    return problems


def _has_policy(schema: SchemaSnapshot, table: str) -> bool:
    return any(p.table == table for p in schema.policies.values())


@contextmanager
def _reader_role(
    server: SandboxServer,
    admin: psycopg.Connection[Any],
    owner: psycopg.Connection[Any],
    *,
    needed: bool,
) -> Iterator[str]:
    """A role that owns nothing, which the owner's session may SET ROLE to; dropped after.
    (Named like a sandbox: a crash leaves it to the cleanup of leftovers.)"""
    if not needed:
        yield ""
        return
    owner_role = owner.execute("SELECT current_user").fetchone()
    assert owner_role is not None
    with reserved_name(server) as reader:
        admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(reader)))
        admin.execute(
            sql.SQL("GRANT {} TO {}").format(sql.Identifier(reader), sql.Identifier(owner_role[0]))
        )
        yield reader


def _isolation_leak(
    owner: psycopg.Connection[Any],
    schema: SchemaSnapshot,
    table: str,
    settings: RlsSettings,
    reader: str,
) -> str | None:
    """Rows for two tenants, read as a non-owner role with each tenant's setting; all of it
    inside a transaction that is rolled back, so the rollback checks see no trace of it."""
    column = next((c for c in schema.tables[table].columns if c.name == settings.column), None)
    if column is None:
        return f"has no column {settings.column}, so tenant isolation cannot be tested"
    tenant_a, tenant_b = tenant_values(column.type)
    schema_name, table_name = table.split(".", 1) if "." in table else ("public", table)
    relation = sql.Identifier(schema_name, table_name)  # snapshot names are unquoted
    col = sql.Identifier(settings.column)
    try:
        with owner.transaction(force_rollback=True):
            seeded = seed_rows(owner, schema, rows_per_table=2)
            owner.execute(sql.SQL("UPDATE {} SET {} = %s").format(relation, col), (tenant_a,))
            owner.execute(
                sql.SQL("UPDATE {t} SET {c} = %s WHERE ctid = (SELECT min(ctid) FROM {t})").format(
                    t=relation, c=col
                ),
                (tenant_b,),
            )
            missing = _missing_tenant_rows(owner, relation, col, (tenant_a, tenant_b))
            if missing:
                reason = seeded.failed.get(table)
                return f"tenant isolation could not be verified: {missing} {table}" + (
                    f" ({reason})" if reason else ""
                )
            if schema_name != "public":  # public: USAGE for everyone already
                owner.execute(
                    sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                        sql.Identifier(schema_name), sql.Identifier(reader)
                    )
                )
            owner.execute(
                sql.SQL("GRANT SELECT ON {} TO {}").format(relation, sql.Identifier(reader))
            )
            owner.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(reader)))
            for own, other in ((tenant_a, tenant_b), (tenant_b, tenant_a)):
                owner.execute("SELECT set_config(%s, %s, true)", (settings.setting, own))
                row = owner.execute(
                    sql.SQL("SELECT count(*) FROM {} WHERE {}::text = %s").format(relation, col),
                    (other,),
                ).fetchone()
                if row and row[0]:
                    return (
                        f"with {settings.setting} = '{own}', a non-owner role read "
                        f"{row[0]} row(s) of tenant '{other}'"
                    )
    except psycopg.Error as error:
        return f"tenant isolation could not be verified: {str(error).strip()}"
    return None


def _missing_tenant_rows(
    owner: psycopg.Connection[Any],
    relation: sql.Identifier,
    column: sql.Identifier,
    tenants: tuple[str, str],
) -> str | None:
    """Without a row of each tenant, reading none of the other's proves nothing."""
    query = sql.SQL(
        "SELECT count(*) FILTER (WHERE {c}::text = %s), count(*) FILTER (WHERE {c}::text = %s)"
        " FROM {t}"
    ).format(c=column, t=relation)
    counts = owner.execute(query, tenants).fetchone()
    if counts is None or not any(counts):
        return "no rows could be inserted into"
    if not all(counts):
        return "rows of only one tenant could be inserted into"
    return None


_INTEGER_TYPES = frozenset(
    {"smallint", "integer", "bigint", "int", "int2", "int4", "int8"}
    | {"smallserial", "serial", "bigserial", "serial2", "serial4", "serial8"}
)


def tenant_values(type_name: str) -> tuple[str, str]:
    """Two tenants' values for a tenant column of this type (as format_type names it)."""
    lowered = type_name.lower().strip()
    if lowered in _INTEGER_TYPES:
        return _TENANTS["int"]
    return _TENANTS["uuid" if lowered == "uuid" else "text"]


def _bare(name: str) -> str:
    return name.removeprefix("public.")


def _statement_touching(trace: list[TracedStatement], table: str) -> dict[str, Any] | None:
    short = _bare(table).lower()
    for statement in reversed(trace):
        if short in statement.sql.lower():
            return {"sql": statement.sql, "path": statement.path, "line": statement.line}
    return None
