"""Alembic environment of migsafe's own state database.

Online, the connection comes from `config.attributes["conninfo"]` (set by
`bot.store.db.upgrade`: a libpq URL or key=value string, e.g. the embedded cluster's
Unix socket) or else `sqlalchemy.url`. Offline (`--sql`, as migsafe's dry-run runs
it) only the PostgreSQL dialect is needed. Self-contained on purpose: it imports
nothing from `bot`, so migsafe can check this project like any other.
"""

from __future__ import annotations

import re

import psycopg
from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
SQLALCHEMY_DRIVER = re.compile(r"^postgres(?:ql)?\+\w+://")


def _libpq_conninfo() -> str:
    conninfo = config.attributes.get("conninfo") or config.get_main_option("sqlalchemy.url")
    if not conninfo:
        raise RuntimeError("no database: set DATABASE_URL or run `migsafe db upgrade`")
    # psycopg speaks libpq: "postgresql+psycopg://" (SQLAlchemy's spelling) becomes plain.
    return SQLALCHEMY_DRIVER.sub("postgresql://", str(conninfo))


def run_migrations_offline() -> None:
    context.configure(dialect_name="postgresql", literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    conninfo = _libpq_conninfo()
    engine = create_engine(
        "postgresql+psycopg://",
        creator=lambda: psycopg.connect(conninfo),
        poolclass=pool.NullPool,
    )
    with engine.connect() as connection:
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
