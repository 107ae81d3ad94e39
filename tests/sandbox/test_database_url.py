"""The URL env.py is given (`database_env.sandbox_params`) is rendered without importing
SQLAlchemy in the parent: SQLAlchemy must read it back to the very same parts, and psycopg
must reach the same server with it."""

from __future__ import annotations

import pytest
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import make_url

from bot.migrations.database_env import sandbox_params

SERVERS = [
    {"host": "/tmp/migsafe-sock", "port": 54329},
    {"host": "db.example.test", "port": 5433, "sslmode": "require"},
    {"host": "::1", "port": 5432, "application_name": "a b&c"},
    {"host": "/var/run/with space", "port": 5432, "options": "-c statement_timeout=0"},
]
CREDENTIALS = [
    ("migsafe_sbx_0123abcd", "Zx9-_.~token"),
    ("migsafe_sbx_odd", "p@ss:w/rd?#&=+ %é"),
    ("role with space+plus", "a/b"),
]


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize(("user", "password"), CREDENTIALS)
def test_sqlalchemy_reads_back_every_part(
    server: dict[str, object], user: str, password: str
) -> None:
    dbname = user.replace(" ", "_") + "/db"
    conninfo = make_conninfo(**server, dbname=dbname, user=user, password=password)  # type: ignore[arg-type]
    params = sandbox_params(conninfo)
    parsed = make_url(params.url)
    assert parsed.drivername == "postgresql+psycopg"
    assert (parsed.username, parsed.password, parsed.database) == (user, password, dbname)
    host = str(server["host"])
    if host.startswith("/"):  # a socket directory travels in the query, as libpq reads it
        assert (parsed.host, parsed.query["host"], parsed.query["port"]) == (
            None,
            host,
            str(server["port"]),
        )
        assert params.socket_dir == host and params.host == "localhost"
    else:
        assert (parsed.host, parsed.port) == (host, server["port"])
    extras = {k: str(v) for k, v in server.items() if k not in {"host", "port"}}
    assert {k: parsed.query[k] for k in extras} == extras
