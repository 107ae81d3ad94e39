"""SandboxServer.url renders the child's SQLAlchemy URL without importing SQLAlchemy in the
parent: it must be the very string SQLAlchemy renders, and parse back to the same parts."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import URL, make_url

from bot.sandbox.database import SandboxServer

ADMIN_CONNINFOS = [
    "host=/tmp/migsafe-sock port=54329 user=postgres dbname=postgres",
    "postgresql://admin:pw@db.example.test:5433/postgres?sslmode=require",
    "postgresql+psycopg://admin@[::1]:5432/postgres?application_name=a%20b%26c",
    "host='/var/run/with space' port=5432 options='-c statement_timeout=0'",
]
CREDENTIALS = [
    ("migsafe_sbx_0123abcd", "Zx9-_.~token"),
    ("migsafe_sbx_odd", "p@ss:w/rd?#&=+ %é"),
    ("role with space+plus", "a/b"),
]


@pytest.mark.parametrize("admin", ADMIN_CONNINFOS)
@pytest.mark.parametrize(("user", "password"), CREDENTIALS)
def test_url_is_the_string_sqlalchemy_renders(admin: str, user: str, password: str) -> None:
    server = SandboxServer(admin)
    dbname = user.replace(" ", "_") + "/db"
    rendered = server.url(dbname=dbname, user=user, password=password)

    query = {
        key: str(value)
        for key, value in server._params.items()
        if key not in {"dbname", "user", "password"} and value is not None
    }
    expected = URL.create(
        "postgresql+psycopg", username=user, password=password, database=dbname, query=query
    ).render_as_string(hide_password=False)
    assert rendered == expected

    parsed = make_url(rendered)
    assert (parsed.username, parsed.password, parsed.database) == (user, password, dbname)
    assert dict(parsed.query) == query
    assert parsed.host is None and parsed.port is None
