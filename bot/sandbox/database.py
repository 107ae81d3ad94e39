"""The per-check throwaway database: a fresh database and a fresh login role owning only it.

Over 400 lines: database, role, advisory-lock guard and cleanup are one life cycle.

Works on the embedded cluster or on any server given by an admin URL (MIGSAFE_SANDBOX_URL).
Every sandbox is guarded by a session-level advisory lock held by the creating process's
admin connection: `cleanup_leftovers` drops only prefixed databases/roles whose lock is free,
so a crashed check is cleaned up without touching the live sandboxes of another process
sharing the server.

The role is checked in pg_roles right after it is created, and the sandbox is refused (fail
closed) unless it is exactly what the checks rely on: no superuser, no CREATEROLE, CREATEDB,
REPLICATION or BYPASSRLS, member of no other role, and a CONNECTION LIMIT of
`CONNECTION_LIMIT`. One connection is all a migration needs (Alembic's); the sandbox child
opens no other while it runs one request, and migsafe's own sessions as the role never
overlap the child's (`Sandbox.settle` ends whatever the child left behind first). A second
connection a migration opens beside Alembic's is therefore refused by the server.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bot.sandbox.relay import RELAY_PORT

PREFIX = "migsafe_sbx_"
SANDBOX_URL_VARIABLE = "MIGSAFE_SANDBOX_URL"
FORCE_DROP_MIN_VERSION = 130000  # DROP DATABASE ... WITH (FORCE)
CONNECT_TIMEOUT_S = 10
PLAIN_DROP_ATTEMPTS = 20
# Connections the sandbox role may hold at once: Alembic's, or one of migsafe's own sessions.
CONNECTION_LIMIT = 1
SETTLE_GRACE_S = 1.0  # a backend whose client closed the connection is gone well within this
SETTLE_TIMEOUT_S = 10.0  # terminated backends take a moment to go
SETTLE_POLL_S = 0.01

logger = logging.getLogger(__name__)

_LOCK_KEY = "hashtextextended({}, 0)"
_ROLE_ATTRIBUTES = """
SELECT r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolreplication, r.rolbypassrls,
       r.rolconnlimit, r.rolcanlogin,
       ARRAY(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
             WHERE m.member = r.oid ORDER BY 1)
FROM pg_roles r WHERE r.rolname = %s
"""
_ROLE_SESSIONS = "SELECT pid FROM pg_stat_activity WHERE usename = %s AND pid <> pg_backend_pid()"
_LEFTOVERS = """
SELECT datname AS name FROM pg_database WHERE starts_with(datname, %(prefix)s)
UNION
SELECT rolname FROM pg_roles WHERE starts_with(rolname, %(prefix)s)
ORDER BY 1
"""


class SandboxDatabaseError(RuntimeError):
    """The sandbox's database or role cannot be used as the checks require."""


class UnsafeRoleError(SandboxDatabaseError):
    """The sandbox role is not what the checks rely on (see `verify_role`): no sandbox."""


class SandboxServer:
    """A PostgreSQL server that sandboxes are created on, reached with an admin conninfo
    (key=value or URL; a SQLAlchemy ``postgresql+driver://`` URL is accepted too)."""

    def __init__(self, admin_conninfo: str) -> None:
        self._params: dict[str, Any] = conninfo_to_dict(_strip_driver(admin_conninfo))
        self._params.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
        self._connection: psycopg.Connection[Any] | None = None
        self._live: set[str] = set()  # Sandboxes of this process: their locks are ours.
        self._lock = threading.RLock()
        self._cleaned = False

    @property
    def admin_conninfo(self) -> str:
        return make_conninfo(**self._params)

    def conninfo(self, *, dbname: str, user: str | None = None, password: str | None = None) -> str:
        """The admin conninfo with the database (and optionally the credentials) replaced."""
        overrides: dict[str, Any] = {"dbname": dbname}
        if user is not None:
            overrides |= {"user": user, "password": password}
        return make_conninfo(**(self._params | overrides))

    def conninfo_via(self, socket_dir: Path, *, dbname: str, user: str, password: str) -> str:
        """The conninfo as `conninfo` gives it, with the host a relay's socket directory."""
        params = {k: v for k, v in self._params.items() if k not in {"host", "hostaddr", "port"}}
        params |= {"dbname": dbname, "user": user, "password": password}
        return make_conninfo(**params, host=str(socket_dir), port=RELAY_PORT)

    def address(self) -> tuple[str, int]:
        """Where the server listens: a host name or address, or a Unix socket directory."""
        host = str(self._params.get("host") or self._params.get("hostaddr") or "")
        host = host.split(",")[0] or "/var/run/postgresql"  # libpq's default socket directory
        return host, int(str(self._params.get("port") or "5432").split(",")[0])

    def server_version(self) -> str:
        with self._lock:
            row = self._admin().execute("SHOW server_version").fetchone()
        return str(row[0]) if row else ""

    def close(self) -> None:
        """Drop this process's remaining sandboxes and close the admin connection."""
        with self._lock:
            for name in sorted(self._live):
                self.drop(name)
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    # -- used by Sandbox / create_sandbox / cleanup_leftovers ------------------------------

    def ensure_cleaned(self) -> None:
        """Remove leftovers of crashed checks the first time this server is used."""
        with self._lock:
            if not self._cleaned:
                self._cleaned = True
                cleanup_leftovers(self)

    def create(self, name: str, password: str) -> None:
        with self._lock:
            admin = self._admin()
            self._live.add(name)
            admin.execute(sql.SQL(f"SELECT pg_advisory_lock({_LOCK_KEY})").format(name))
            try:
                self._create_role_and_database(admin, name, password)
                verify_role(admin, name)
                self._secure_public_schema(name)
            except BaseException:
                with contextlib.suppress(psycopg.Error):  # Keep the original error.
                    self.drop(name)
                raise

    def reserve(self, name: str) -> None:
        """Claim a prefixed name for an object this process creates next to a sandbox (a
        role): `cleanup_leftovers` elsewhere leaves it alone until `drop(name)`."""
        with self._lock:
            admin = self._admin()
            self._live.add(name)
            admin.execute(sql.SQL(f"SELECT pg_advisory_lock({_LOCK_KEY})").format(name))

    def drop(self, name: str) -> None:
        """Drop the sandbox's database and role; never raises on a missing one."""
        with self._lock:
            admin = self._admin()
            try:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE (datname = %s OR usename = %s) AND pid <> pg_backend_pid()",
                    (name, name),
                )
                self._drop_database(admin, name)
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
            finally:
                self._live.discard(name)
                with contextlib.suppress(psycopg.Error):  # A lost session has no locks.
                    unlock = sql.SQL(f"SELECT pg_advisory_unlock({_LOCK_KEY})").format(name)
                    admin.execute(unlock)

    def database_size(self, name: str) -> int:
        """pg_database_size of a sandbox, in bytes, read over the admin connection."""
        with self._lock:
            row = self._admin().execute("SELECT pg_database_size(%s)", (name,)).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def end_sessions(self, role: str) -> int:
        """Wait until `role` has no session left on the server: a session still there after
        `SETTLE_GRACE_S` (a client that closed its connection is gone by then) is terminated.
        Returns how many had to be terminated."""
        deadline = time.monotonic() + SETTLE_GRACE_S
        pids = self._sessions_of(role)
        while pids and time.monotonic() < deadline:
            time.sleep(SETTLE_POLL_S)
            pids = self._sessions_of(role)
        if not pids:
            return 0
        with self._lock:
            for pid in pids:
                with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
                    self._admin().execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while self._sessions_of(role) & pids:
            if time.monotonic() > deadline:
                raise SandboxDatabaseError(
                    f"sessions {sorted(pids)} of role {role} did not end "
                    f"within {SETTLE_TIMEOUT_S:.0f} s"
                )
            time.sleep(SETTLE_POLL_S)
        return len(pids)

    def _sessions_of(self, role: str) -> set[int]:
        with self._lock:
            rows = self._admin().execute(_ROLE_SESSIONS, (role,)).fetchall()
        return {int(row[0]) for row in rows}

    def try_claim(self, name: str) -> bool:
        """Take the advisory lock of a sandbox no live process holds (a leftover)."""
        with self._lock:
            if name in self._live:
                return False
            query = sql.SQL(f"SELECT pg_try_advisory_lock({_LOCK_KEY})").format(name)
            row = self._admin().execute(query).fetchone()
            return bool(row and row[0])

    def leftover_names(self) -> list[str]:
        with self._lock:
            rows = self._admin().execute(_LEFTOVERS, {"prefix": PREFIX}).fetchall()
        return [str(row[0]) for row in rows]

    # -- internals --------------------------------------------------------------------------

    def _admin(self) -> psycopg.Connection[Any]:
        if self._connection is None or self._connection.closed or self._connection.broken:
            self._connection = psycopg.connect(self.admin_conninfo, autocommit=True)
            for name in self._live:  # Locks die with a session: take them again.
                self._connection.execute(
                    sql.SQL(f"SELECT pg_advisory_lock({_LOCK_KEY})").format(name)
                )
        return self._connection

    @staticmethod
    def _create_role_and_database(admin: psycopg.Connection[Any], name: str, pw: str) -> None:
        ident = sql.Identifier(name)
        admin.execute(
            sql.SQL(
                "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION"
                " NOBYPASSRLS CONNECTION LIMIT {} PASSWORD {}"
            ).format(ident, sql.Literal(CONNECTION_LIMIT), sql.Literal(pw))
        )
        admin.execute(
            sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0").format(ident, ident)
        )
        admin.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(ident))
        admin.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(ident, ident))

    def _secure_public_schema(self, name: str) -> None:
        """Before PostgreSQL 15 everybody may create in schema public; make it the role's."""
        ident = sql.Identifier(name)
        with psycopg.connect(self.conninfo(dbname=name), autocommit=True) as connection:
            connection.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            connection.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(ident))

    def _drop_database(self, admin: psycopg.Connection[Any], name: str) -> None:
        drop = sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name))
        if admin.info.server_version >= FORCE_DROP_MIN_VERSION:
            admin.execute(drop + sql.SQL(" WITH (FORCE)"))
            return
        for attempt in range(PLAIN_DROP_ATTEMPTS):  # Terminated backends take a moment to go.
            try:
                admin.execute(drop)
                return
            except psycopg.errors.ObjectInUse:
                if attempt == PLAIN_DROP_ATTEMPTS - 1:
                    raise
                time.sleep(0.05)


class Sandbox:
    """One check's database and role; a context manager that drops both on exit."""

    def __init__(self, server: SandboxServer, name: str, password: str) -> None:
        self.server = server
        self.name = name  # Both the database and the role are called this.
        self.password = password
        self._dropped = False

    @property
    def database(self) -> str:
        return self.name

    @property
    def role(self) -> str:
        return self.name

    @property
    def conninfo(self) -> str:
        """psycopg conninfo as the sandbox role on the sandbox database."""
        return self.server.conninfo(dbname=self.name, user=self.name, password=self.password)

    @property
    def admin_conninfo(self) -> str:
        """psycopg conninfo as the server admin on the sandbox database."""
        return self.server.conninfo(dbname=self.name)

    def conninfo_via(self, socket_dir: Path) -> str:
        """`conninfo` through a contained child's relay socket in `socket_dir` (its only way
        to the server: it has no network, and the server's own socket is not in its view)."""
        return self.server.conninfo_via(
            socket_dir, dbname=self.name, user=self.name, password=self.password
        )

    def settle(self) -> int:
        """No session of the role is left (see `SandboxServer.end_sessions`): before each
        request to the child and each of migsafe's own sessions as the role, so that the two
        never hold the role's one connection at once. How many had to be terminated."""
        return self.server.end_sessions(self.role)

    def size(self) -> int:
        """The database's size in bytes (pg_database_size, over the admin connection)."""
        return self.server.database_size(self.name)

    def drop(self) -> None:
        if not self._dropped:
            self._dropped = True
            self.server.drop(self.name)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self.drop()
        except psycopg.Error as error:
            if exc is None:
                raise
            # Keep the check's own error; the leftover goes at the next cleanup.
            logger.warning("could not drop sandbox %s: %s", self.name, error)


def create_sandbox(server: SandboxServer) -> Sandbox:
    """Create a fresh database and role (dropped by the returned context manager's exit)."""
    server.ensure_cleaned()
    name = new_name()
    password = secrets.token_urlsafe(24)
    server.create(name, password)
    return Sandbox(server, name, password)


def verify_role(admin: psycopg.Connection[Any], name: str) -> None:
    """Raise UnsafeRoleError unless pg_roles shows the sandbox role as created: a login role
    that is no superuser, cannot create roles or databases, replicate or bypass row level
    security, is a member of no other role, and has the connection limit of CONNECTION_LIMIT.
    (Something on the server, or a role of that name already there, could make it otherwise:
    then no repository code runs against it.)"""
    row = admin.execute(_ROLE_ATTRIBUTES, (name,)).fetchone()
    if row is None:
        raise UnsafeRoleError(f"the sandbox role {name} is not in pg_roles after CREATE ROLE")
    superuser, createrole, createdb, replication, bypassrls, limit, login, member_of = row
    wrong = [
        attribute
        for attribute, granted in (
            ("SUPERUSER", superuser),
            ("CREATEROLE", createrole),
            ("CREATEDB", createdb),
            ("REPLICATION", replication),
            ("BYPASSRLS", bypassrls),
        )
        if granted
    ]
    if not login:
        wrong.append("NOLOGIN")
    if limit != CONNECTION_LIMIT:
        wrong.append(f"CONNECTION LIMIT {limit} (not {CONNECTION_LIMIT})")
    if member_of:
        wrong.append(f"member of {', '.join(member_of)}")
    if wrong:
        raise UnsafeRoleError(
            f"the sandbox role {name} is not a plain restricted role: {'; '.join(wrong)}"
        )


def new_name() -> str:
    """A fresh sandbox name, of the form `cleanup_leftovers` recognises."""
    return PREFIX + secrets.token_hex(8)


@contextlib.contextmanager
def reserved_name(server: SandboxServer) -> Iterator[str]:
    """A fresh name claimed for this process; whatever role of that name exists at the end
    is dropped (and after a crash, by the next cleanup of leftovers)."""
    name = new_name()
    server.reserve(name)
    try:
        yield name
    finally:
        server.drop(name)


def cleanup_leftovers(server: SandboxServer) -> list[str]:
    """Drop every prefixed database and role that no live migsafe process holds; the names."""
    dropped: list[str] = []
    for name in server.leftover_names():
        if not _is_sandbox_name(name) or not server.try_claim(name):
            continue
        try:
            server.drop(name)
            dropped.append(name)
        except psycopg.Error as error:
            logger.warning("could not drop leftover sandbox %s: %s", name, error)
    return dropped


_servers: dict[str, SandboxServer] = {}
_servers_lock = threading.Lock()


def shared_server(admin_url: str | None = None) -> SandboxServer:
    """The process-wide server for `admin_url`, else MIGSAFE_SANDBOX_URL, else the embedded
    cluster (started on first use); one admin connection and one leftover cleanup each."""
    admin_url = admin_url or os.environ.get(SANDBOX_URL_VARIABLE) or None
    with _servers_lock:
        if admin_url is None:
            from bot.sandbox.cluster import shared_cluster

            admin_url = shared_cluster().conninfo()
        if admin_url not in _servers:
            _servers[admin_url] = SandboxServer(admin_url)
        return _servers[admin_url]


def _is_sandbox_name(name: str) -> bool:
    return re.fullmatch(re.escape(PREFIX) + r"[0-9a-f]+", name) is not None


def _strip_driver(url: str) -> str:
    """postgresql+psycopg://... (SQLAlchemy) -> postgresql://... (libpq)."""
    return re.sub(r"^(postgres(?:ql)?)\+\w+://", r"\1://", url.strip())
