"""The per-check database and role: confined, usable, and always dropped."""

from __future__ import annotations

import threading

import psycopg
import pytest
import sqlalchemy
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bot.migrations.database_env import sandbox_params
from bot.sandbox.cluster import EmbeddedCluster
from bot.sandbox.database import (
    CONNECTION_LIMIT,
    PREFIX,
    Sandbox,
    SandboxServer,
    UnsafeRoleError,
    cleanup_leftovers,
    create_sandbox,
    new_name,
    reserved_name,
    shared_server,
    verify_role,
)


def _admin_rows(server: SandboxServer, statement: str, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(server.admin_conninfo, autocommit=True) as connection:
        return connection.execute(statement, params or None).fetchall()


def _admin_execute(server: SandboxServer, statement: str) -> None:
    with psycopg.connect(server.admin_conninfo, autocommit=True) as connection:
        connection.execute(statement.encode())


def _exists(server: SandboxServer, name: str) -> tuple[bool, bool]:
    """(database exists, role exists)."""
    database = _admin_rows(server, "SELECT 1 FROM pg_database WHERE datname = %s", name)
    role = _admin_rows(server, "SELECT 1 FROM pg_roles WHERE rolname = %s", name)
    return bool(database), bool(role)


def _make_orphan(server: SandboxServer, name: str) -> None:
    """What a check that crashed mid-run leaves behind: a prefixed role and database."""
    with psycopg.connect(server.admin_conninfo, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def test_role_is_confined(sandbox_server: SandboxServer) -> None:
    with create_sandbox(sandbox_server) as sandbox:
        rows = _admin_rows(
            sandbox_server,
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolcanlogin"
            " FROM pg_roles WHERE rolname = %s",
            sandbox.role,
        )
    assert rows == [(False, False, False, False, False, True)]
    assert sandbox.name.startswith(PREFIX)


def test_role_may_hold_one_connection_and_is_member_of_no_role(
    sandbox_server: SandboxServer,
) -> None:
    with create_sandbox(sandbox_server) as sandbox:
        rows = _admin_rows(
            sandbox_server,
            "SELECT r.rolconnlimit, (SELECT count(*) FROM pg_auth_members m WHERE m.member = r.oid)"
            " FROM pg_roles r WHERE r.rolname = %s",
            sandbox.role,
        )
    assert CONNECTION_LIMIT == 1
    assert rows == [(1, 0)]


def test_a_second_connection_as_the_role_is_refused(sandbox_server: SandboxServer) -> None:
    with (
        create_sandbox(sandbox_server) as sandbox,
        psycopg.connect(sandbox.conninfo) as first,
    ):
        with pytest.raises(psycopg.OperationalError, match="too many connections for role"):
            psycopg.connect(sandbox.conninfo)
        engine = sqlalchemy.create_engine(
            sandbox_params(sandbox.conninfo).url, poolclass=sqlalchemy.pool.NullPool
        )
        with pytest.raises(sqlalchemy.exc.OperationalError, match="too many connections"):
            engine.connect()
        assert first.execute("SELECT 1").fetchone() == (1,)  # the first one is unharmed


@pytest.mark.parametrize(
    ("alteration", "named"),
    [
        ("SUPERUSER", "SUPERUSER"),
        ("CREATEDB", "CREATEDB"),
        ("CREATEROLE", "CREATEROLE"),
        ("REPLICATION", "REPLICATION"),
        ("BYPASSRLS", "BYPASSRLS"),
        ("CONNECTION LIMIT -1", "CONNECTION LIMIT -1 (not 1)"),
        ("NOLOGIN", "NOLOGIN"),
    ],
)
def test_a_role_that_is_not_restricted_fails_verification(
    sandbox_server: SandboxServer, alteration: str, named: str
) -> None:
    with (
        create_sandbox(sandbox_server) as sandbox,
        psycopg.connect(sandbox_server.admin_conninfo, autocommit=True) as admin,
    ):
        verify_role(admin, sandbox.role)  # as created: passes
        role = sql.Identifier(sandbox.role)
        admin.execute(sql.SQL("ALTER ROLE {} " + alteration).format(role))
        with pytest.raises(UnsafeRoleError, match="is not a plain restricted role") as raised:
            verify_role(admin, sandbox.role)
    assert named in str(raised.value)


def test_a_role_granted_another_role_fails_verification(sandbox_server: SandboxServer) -> None:
    with (
        create_sandbox(sandbox_server) as sandbox,
        psycopg.connect(sandbox_server.admin_conninfo, autocommit=True) as admin,
    ):
        role = sql.Identifier(sandbox.role)
        admin.execute(sql.SQL("GRANT pg_read_server_files TO {}").format(role))
        with pytest.raises(UnsafeRoleError, match="member of pg_read_server_files"):
            verify_role(admin, sandbox.role)


class _CarelessServer(SandboxServer):
    """A server on which the sandbox role comes out a superuser (as on a server where the
    admin's CREATE ROLE is altered behind its back): nothing may run against it."""

    @staticmethod
    def _create_role_and_database(admin: psycopg.Connection[object], name: str, pw: str) -> None:
        SandboxServer._create_role_and_database(admin, name, pw)
        admin.execute(sql.SQL("ALTER ROLE {} SUPERUSER").format(sql.Identifier(name)))


def test_an_unsafe_role_is_refused_and_dropped(embedded_cluster: EmbeddedCluster) -> None:
    server = _CarelessServer(embedded_cluster.conninfo())
    try:
        with pytest.raises(UnsafeRoleError, match="SUPERUSER"):
            create_sandbox(server)
        assert server.leftover_names() == []
    finally:
        server.close()


def test_settle_ends_a_session_left_open_and_waits_for_closed_ones(
    sandbox_server: SandboxServer,
) -> None:
    with create_sandbox(sandbox_server) as sandbox:
        psycopg.connect(sandbox.conninfo).close()  # closed: its backend goes on its own
        assert sandbox.settle() == 0
        left = psycopg.connect(sandbox.conninfo, autocommit=True)
        try:
            assert sandbox.settle() == 1
            sessions = _admin_rows(
                sandbox_server,
                "SELECT count(*) FROM pg_stat_activity WHERE usename = %s",
                sandbox.role,
            )
            assert sessions == [(0,)]
            with pytest.raises(psycopg.OperationalError):
                left.execute("SELECT 1")
        finally:
            left.close()
        with psycopg.connect(sandbox.conninfo) as again:  # the one connection is free again
            assert again.execute("SELECT 1").fetchone() == (1,)


def test_size_is_the_databases_size_in_bytes(sandbox_server: SandboxServer) -> None:
    with create_sandbox(sandbox_server) as sandbox:
        empty = sandbox.size()
        with psycopg.connect(sandbox.conninfo, autocommit=True) as connection:
            connection.execute(
                "CREATE TABLE filler AS SELECT md5(g::text) || repeat('x', 900) AS t"
                " FROM generate_series(1, 5000) g"
            )
        grown = sandbox.size()
        expected = _admin_rows(sandbox_server, "SELECT pg_database_size(%s)", sandbox.name)
    assert 1024**2 < empty < 64 * 1024**2
    assert grown - empty > 4 * 1024**2  # 5000 rows of ~1 KB
    assert expected == [(grown,)]


def test_role_creates_tables_in_its_own_database(sandbox_server: SandboxServer) -> None:
    with create_sandbox(sandbox_server) as sandbox:
        with psycopg.connect(sandbox.conninfo) as connection:
            connection.execute("CREATE TABLE public.items (id int PRIMARY KEY)")
            connection.execute("INSERT INTO items VALUES (1)")
            row = connection.execute(
                "SELECT current_user, current_database(), count(*) FROM items GROUP BY 1, 2"
            ).fetchone()
        owner = _admin_rows(
            sandbox_server,
            "SELECT datdba::regrole::text FROM pg_database WHERE datname = %s",
            sandbox.database,
        )
    assert row == (sandbox.role, sandbox.database, 1)
    assert owner == [(sandbox.role,)]


def test_public_schema_belongs_to_the_role_and_not_to_public(
    sandbox_server: SandboxServer,
) -> None:
    with (
        create_sandbox(sandbox_server) as sandbox,
        psycopg.connect(sandbox.admin_conninfo) as connection,
    ):
        owner = connection.execute(
            "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'public'"
        ).fetchone()
        public_create = connection.execute(
            "SELECT count(*) FROM pg_namespace, aclexplode(nspacl) AS acl WHERE nspname = 'public'"
            " AND acl.grantee = 0 AND acl.privilege_type = 'CREATE'"
        ).fetchone()
    assert owner == (sandbox.role,)
    assert public_create == (0,)


def test_role_cannot_connect_to_another_sandbox(sandbox_server: SandboxServer) -> None:
    denied = pytest.raises(psycopg.OperationalError, match="permission denied for database")
    with create_sandbox(sandbox_server) as mine, create_sandbox(sandbox_server) as theirs, denied:
        psycopg.connect(make_conninfo(mine.conninfo, dbname=theirs.database))


def test_role_cannot_connect_to_the_maintenance_database(
    sandbox_server: SandboxServer, embedded_cluster: EmbeddedCluster
) -> None:
    with create_sandbox(sandbox_server) as sandbox:
        for database in ("postgres", "template1"):
            with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
                psycopg.connect(make_conninfo(sandbox.conninfo, dbname=database))


def test_sqlalchemy_url_connects_as_the_role(sandbox_server: SandboxServer) -> None:
    with create_sandbox(sandbox_server) as sandbox:
        url = sandbox_params(sandbox.conninfo).url
        engine = sqlalchemy.create_engine(url)
        try:
            with engine.connect() as connection:
                row = connection.exec_driver_sql("SELECT current_user, current_database()").one()
        finally:
            engine.dispose()
    assert url.startswith(f"postgresql+psycopg://{sandbox.role}:")
    assert tuple(row) == (sandbox.role, sandbox.database)


def test_everything_is_dropped_even_when_the_body_raises(sandbox_server: SandboxServer) -> None:
    names: list[str] = []
    with pytest.raises(RuntimeError, match="check failed"), create_sandbox(sandbox_server) as sb:
        names.append(sb.name)
        # A session the check left open must not keep the database alive.
        left_open = psycopg.connect(sb.conninfo)
        left_open.execute("CREATE TABLE t (id int)")
        raise RuntimeError("check failed")
    left_open.close()
    assert _exists(sandbox_server, names[0]) == (False, False)


def test_drop_is_idempotent(sandbox_server: SandboxServer) -> None:
    sandbox = create_sandbox(sandbox_server)
    with sandbox:
        pass
    sandbox.drop()
    assert _exists(sandbox_server, sandbox.name) == (False, False)


def test_cleanup_leftovers_drops_prefixed_orphans_only(sandbox_server: SandboxServer) -> None:
    orphan = PREFIX + "0badc0de"
    other_process = SandboxServer(sandbox_server.admin_conninfo)
    try:
        with create_sandbox(sandbox_server) as own, create_sandbox(other_process) as live:
            _make_orphan(sandbox_server, orphan)
            unrelated = "migsafe_other_db"
            _admin_execute(sandbox_server, f"CREATE ROLE {unrelated}")
            dropped = cleanup_leftovers(sandbox_server)
            assert _exists(sandbox_server, own.name) == (True, True)
            assert _exists(sandbox_server, live.name) == (True, True)
    finally:
        other_process.close()
    assert orphan in dropped
    assert own.name not in dropped and live.name not in dropped
    assert _exists(sandbox_server, orphan) == (False, False)
    assert _exists(sandbox_server, unrelated) == (False, True)
    _admin_execute(sandbox_server, f"DROP ROLE {unrelated}")


def test_leftovers_are_cleaned_when_a_server_is_first_used(
    sandbox_server: SandboxServer,
) -> None:
    orphan = PREFIX + "dead0001"
    _make_orphan(sandbox_server, orphan)
    fresh = SandboxServer(sandbox_server.admin_conninfo)
    try:
        with create_sandbox(fresh):
            assert _exists(sandbox_server, orphan) == (False, False)
    finally:
        fresh.close()


def test_leftover_role_without_database_is_cleaned(sandbox_server: SandboxServer) -> None:
    orphan = PREFIX + "dead0002"
    _admin_execute(sandbox_server, f"CREATE ROLE {orphan}")
    assert orphan in cleanup_leftovers(sandbox_server)
    assert _exists(sandbox_server, orphan) == (False, False)


def test_two_sandboxes_at_once_from_two_threads(sandbox_server: SandboxServer) -> None:
    results: dict[str, tuple[object, ...]] = {}

    def check(label: str) -> None:
        with create_sandbox(sandbox_server) as sandbox, psycopg.connect(sandbox.conninfo) as c:
            c.execute("CREATE TABLE mine (label text)")
            c.execute("INSERT INTO mine VALUES (%s)", (label,))
            row = c.execute("SELECT current_database(), label FROM mine").fetchone()
            assert row is not None
            results[label] = tuple(row)

    threads = [threading.Thread(target=check, args=(label,)) for label in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(str(label) for _, label in results.values()) == ["a", "b"]
    assert results["a"][0] != results["b"][0]
    assert not _admin_rows(
        sandbox_server, "SELECT 1 FROM pg_database WHERE starts_with(datname, %s)", PREFIX
    )


def test_sqlalchemy_style_admin_url_is_accepted(embedded_cluster: EmbeddedCluster) -> None:
    params = conninfo_to_dict(embedded_cluster.conninfo())
    url = (
        f"postgresql+psycopg://{params['user']}:{params['password']}@/postgres"
        f"?host={params['host']}&port={params['port']}"
    )
    server = SandboxServer(url)
    try:
        with create_sandbox(server) as sandbox:
            assert isinstance(sandbox, Sandbox)
            assert server.server_version() == embedded_cluster.server_version()
    finally:
        server.close()


def test_shared_server_is_one_per_url(embedded_cluster: EmbeddedCluster) -> None:
    url = embedded_cluster.conninfo()
    assert shared_server(url) is shared_server(url)
    shared_server(url).close()


def test_a_reserved_role_is_left_to_its_process_and_dropped_after(
    sandbox_server: SandboxServer,
) -> None:
    """The RLS reader role: another process's cleanup leaves it alone while the check runs,
    and it is gone (role only, no database) when the check ends."""
    other_process = SandboxServer(sandbox_server.admin_conninfo)
    try:
        with reserved_name(sandbox_server) as name:
            _admin_execute(sandbox_server, f"CREATE ROLE {name} NOLOGIN")
            assert name not in cleanup_leftovers(other_process)
            assert _exists(sandbox_server, name) == (False, True)
    finally:
        other_process.close()
    assert _exists(sandbox_server, name) == (False, False)


def test_a_role_named_as_the_checks_name_them_is_a_leftover_once_its_process_is_gone(
    sandbox_server: SandboxServer,
) -> None:
    orphan = new_name()
    _admin_execute(sandbox_server, f"CREATE ROLE {orphan} NOLOGIN")
    assert orphan in cleanup_leftovers(sandbox_server)
    assert _exists(sandbox_server, orphan) == (False, False)
