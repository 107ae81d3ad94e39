"""The database as env.py asks for it, offline (the dry-run) or the sandbox's.

env.py files reach their database in several ways; migsafe answers all of them, the same way
in both children:
- `sqlalchemy.url` in the Alembic config (set by migsafe, escaped for configparser);
- `DATABASE_URL`;
- the libpq variables `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`;
- the policy's `sandbox.env`, whose values may hold `{host}`, `{port}`, `{user}`,
  `{password}`, `{database}` and `{url}` (e.g. `POSTGRES_SERVER: "{host}"`); `sandbox.env`
  is applied last, so a literal value there wins.
The dry-run connects to nothing, yet env.py still reads these: it gets `OFFLINE`, a plausible
database nobody serves. The sandbox role's password is a secret: `redact` takes it out of
whatever the child says before it reaches a report, a log or a finding.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

from psycopg.conninfo import conninfo_to_dict

from bot.policy.fields import TEMPLATE, TEMPLATE_KEYS

LIBPQ_VARIABLES = ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE")
CONVENTION_VARIABLES = ("DATABASE_URL", *LIBPQ_VARIABLES)
DRIVER = "postgresql+psycopg"  # the driver every child has (migsafe depends on psycopg)
REDACTED = "***"


@dataclass(frozen=True)
class DatabaseParams:
    """One database, as each convention needs it."""

    host: str  # for URLs built from parts: a host name (see `socket_dir`)
    port: str
    user: str
    password: str
    database: str
    url: str  # SQLAlchemy URL (psycopg driver)
    libpq_host: str  # PGHOST: the host, or the server's socket directory
    # A server on a Unix socket only: `host` is then "localhost" (every URL builder accepts
    # it, a directory breaks URL syntax) and the sandbox child routes SQLAlchemy's
    # connections to localhost to this directory.
    socket_dir: str | None = None

    def value(self, key: str) -> str:
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "database": self.database,
            "url": self.url,
        }[key]


OFFLINE = DatabaseParams(
    host="localhost",
    port="5432",
    user="migsafe",
    password="migsafe-offline",
    database="migsafe",
    url=f"{DRIVER}://migsafe:migsafe-offline@localhost:5432/migsafe",
    libpq_host="localhost",
)


def sandbox_params(conninfo: str) -> DatabaseParams:
    """The sandbox role's database from its psycopg conninfo."""
    params: dict[str, Any] = conninfo_to_dict(conninfo)
    host = str(params.get("host") or "")
    port = str(params.get("port") or "5432")
    user, password = str(params.get("user") or ""), str(params.get("password") or "")
    database = str(params.get("dbname") or "")
    socket = host.startswith("/") and "," not in host
    query = {
        key: str(value)
        for key, value in params.items()
        if key not in {"host", "port", "dbname", "user", "password"} and value is not None
    }
    if socket or not host:
        query = {"host": host, "port": port, **query} if host else {"port": port, **query}
        url = _render(user, password, "", database)
    else:
        url = _render(user, password, f"{_bracketed(host)}:{int(port)}", database)
    if query:
        # Unescaped "/" (libpq and SQLAlchemy read `?host=/run/dir` as is): a URL without
        # `%` survives env.py's own `config.set_main_option("sqlalchemy.url", url)`.
        url += "?" + "&".join(f"{key}={quote(value, safe='/:,')}" for key, value in query.items())
    return DatabaseParams(
        host="localhost" if socket else host,
        port=port,
        user=user,
        password=password,
        database=database,
        url=url,
        libpq_host=host,
        socket_dir=host if socket else None,
    )


def _render(user: str, password: str, location: str, database: str) -> str:
    """As SQLAlchemy's `URL.render_as_string(hide_password=False)` writes it, without
    importing SQLAlchemy into migsafe's own process (see tests/test_cli_imports.py)."""
    return (
        f"{DRIVER}://{quote(user, safe=' +')}:{quote(password, safe=' +')}@{location}"
        f"/{quote(database, safe=' +/')}"
    )


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def resolve(value: str, params: DatabaseParams) -> str:
    """A `sandbox.env` value with its placeholders filled in; unknown ones stay as written."""

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        return params.value(key) if key in TEMPLATE_KEYS else match.group(0)

    return TEMPLATE.sub(fill, value)


def child_variables(params: DatabaseParams, sandbox_env: Mapping[str, str]) -> dict[str, str]:
    """What env.py finds in its environment: the conventions, then the policy's
    `sandbox.env` (templates filled in) on top."""
    variables = {
        "DATABASE_URL": params.url,
        "PGHOST": params.libpq_host,
        "PGPORT": params.port,
        "PGUSER": params.user,
        "PGPASSWORD": params.password,
        "PGDATABASE": params.database,
    }
    variables.update({name: resolve(value, params) for name, value in sandbox_env.items()})
    return variables


def variable_names(sandbox_env: Mapping[str, str]) -> dict[str, str]:
    """The child's variables before the database exists: every name, no secret value."""
    return {name: "" for name in [*CONVENTION_VARIABLES, *sandbox_env]}


def redact(text: str, secret: str) -> str:
    """`text` without `secret`, as written or URL-quoted."""
    if not secret:
        return text
    for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
        text = text.replace(form, REDACTED)
    return text


def redacted(value: object, secret: str) -> Any:
    """Every string in a JSON-like value (a child's reply) redacted."""
    if isinstance(value, str):
        return redact(value, secret)
    if isinstance(value, list):
        return [redacted(item, secret) for item in value]
    if isinstance(value, dict):
        return {key: redacted(item, secret) for key, item in value.items()}
    return value
