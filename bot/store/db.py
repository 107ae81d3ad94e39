"""The bot's own PostgreSQL: where it is, its Alembic migrations, and the few queries
the webhook path and the jobs share.

Without DATABASE_URL the state lives in the embedded cluster (bot.sandbox.cluster) with
a persistent data directory, in a database named `migsafe`. That cluster is private to
one process: run `migsafe serve` (web + worker), or set DATABASE_URL to split them.
"""

from __future__ import annotations

import contextlib
import datetime
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy.exc
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from bot.errors import UserError
from bot.sandbox.cluster import EmbeddedCluster
from bot.settings import Settings

STATE_DATABASE = "migsafe"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLALCHEMY_DRIVER = re.compile(r"^postgres(?:ql)?\+\w+://")


@dataclass
class StateDatabase:
    """Where the bot keeps its state; `close` stops the embedded cluster if one was started."""

    conninfo: str
    cluster: EmbeddedCluster | None = None

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()


def open_state_database(settings: Settings) -> StateDatabase:
    """DATABASE_URL, else the embedded cluster started on `settings.data_dir` (kept)."""
    return locate_state_database(settings.database_url, settings.data_dir)


def locate_state_database(database_url: str | None, data_dir: Path) -> StateDatabase:
    if database_url:
        return StateDatabase(libpq_conninfo(database_url))
    cluster = EmbeddedCluster(data_dir=data_dir).start()
    try:
        _create_database_if_missing(cluster.conninfo(), STATE_DATABASE)
    except BaseException:
        cluster.stop()
        raise
    return StateDatabase(cluster.conninfo(dbname=STATE_DATABASE), cluster)


def libpq_conninfo(url: str) -> str:
    """A URL psycopg accepts: SQLAlchemy's "postgresql+psycopg://" spelling made plain."""
    return SQLALCHEMY_DRIVER.sub("postgresql://", url)


def _create_database_if_missing(admin_conninfo: str, name: str) -> None:
    with psycopg.connect(admin_conninfo, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if exists.fetchone() is None:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


# -- migrations -----------------------------------------------------------------------------


def alembic_config(conninfo: str | None = None) -> Config:
    """The Alembic configuration of the state database, built in code (no ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", "postgresql://")
    if conninfo is not None:
        config.attributes["conninfo"] = conninfo
    return config


def upgrade(conninfo: str, revision: str = "heads") -> None:
    """`migsafe db upgrade`: the bot's tables and procrastinate's schema, one command."""
    try:
        command.upgrade(alembic_config(conninfo), revision)
    except (psycopg.OperationalError, sqlalchemy.exc.OperationalError) as error:
        detail = _first_line(getattr(error, "orig", None) or error)
        raise UserError(f"cannot reach the state database: {detail}") from error


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(conninfo: str) -> str | None:
    """The state database's schema revision (UserError, one line, when it cannot be read)."""
    try:
        with psycopg.connect(conninfo) as connection:
            exists = connection.execute("SELECT to_regclass('alembic_version')").fetchone()
            if exists is None or exists[0] is None:
                return None
            row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
            return str(row[0]) if row else None
    except psycopg.ProgrammingError:  # libpq's message would quote the URL, password too
        raise UserError("DATABASE_URL: not a PostgreSQL URL or key=value string") from None
    except psycopg.Error as error:
        raise UserError(f"cannot reach the state database: {_first_line(error)}") from error


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or ["unknown error"])[0]


# -- connections ------------------------------------------------------------------------------


async def open_pool(conninfo: str, *, min_size: int = 1, max_size: int = 10) -> AsyncConnectionPool:
    """The process's pool, shared by the webhook handler and procrastinate."""
    pool = AsyncConnectionPool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        open=False,
        check=AsyncConnectionPool.check_connection,
        name="migsafe-state",
    )
    await pool.open(wait=True, timeout=30.0)
    return pool


async def database_ready(pool: AsyncConnectionPool, *, timeout_s: float = 2.0) -> bool:
    """Readiness: `SELECT 1` answered within `timeout_s`."""
    with contextlib.suppress(Exception):
        async with pool.connection(timeout=timeout_s) as connection:
            await connection.execute("SELECT 1")
            return True
    return False


# -- deliveries ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryRecord:
    delivery_id: str
    event: str
    action: str | None
    installation_id: int | None
    repo: str | None
    payload: dict[str, Any]


async def insert_delivery(
    connection: psycopg.AsyncConnection[Any], delivery: DeliveryRecord
) -> datetime.datetime | None:
    """Record a delivery; its received_at, or None when that id was recorded before."""
    cursor = await connection.execute(
        "INSERT INTO deliveries (delivery_id, event, action, installation_id, repo, payload)"
        " VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (delivery_id) DO NOTHING RETURNING received_at",
        (
            delivery.delivery_id,
            delivery.event,
            delivery.action,
            delivery.installation_id,
            delivery.repo,
            Jsonb(delivery.payload),
        ),
    )
    row = await cursor.fetchone()
    return row[0] if row else None


async def set_delivery_jobs(
    connection: psycopg.AsyncConnection[Any], delivery_id: str, job_ids: Iterable[int]
) -> None:
    await connection.execute(
        "UPDATE deliveries SET job_ids = %s WHERE delivery_id = %s", (list(job_ids), delivery_id)
    )


async def delivery_received_at(
    connection: psycopg.AsyncConnection[Any], delivery_id: str
) -> datetime.datetime | None:
    cursor = await connection.execute(
        "SELECT received_at FROM deliveries WHERE delivery_id = %s", (delivery_id,)
    )
    row = await cursor.fetchone()
    return row[0] if row else None


# -- pull request heads ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PullRequestHead:
    """What a pull_request-carrying event says about the PR's head."""

    repo: str
    number: int
    head_sha: str
    base_ref: str | None
    github_updated_at: datetime.datetime | None


async def record_pull_request_head(
    connection: psycopg.AsyncConnection[Any], head: PullRequestHead
) -> None:
    """Upsert the head, unless GitHub's updated_at says the stored one is newer (events
    may arrive out of order). `updated_at` (our clock) moves only when the sha changes."""
    await connection.execute(
        """
        INSERT INTO pull_requests AS pr (repo, number, head_sha, base_ref, github_updated_at)
        VALUES (%(repo)s, %(number)s, %(head_sha)s, %(base_ref)s, %(github_updated_at)s)
        ON CONFLICT (repo, number) DO UPDATE SET
            head_sha = EXCLUDED.head_sha,
            base_ref = COALESCE(EXCLUDED.base_ref, pr.base_ref),
            github_updated_at = GREATEST(EXCLUDED.github_updated_at, pr.github_updated_at),
            updated_at = CASE WHEN pr.head_sha = EXCLUDED.head_sha THEN pr.updated_at
                              ELSE now() END
        WHERE pr.github_updated_at IS NULL OR EXCLUDED.github_updated_at IS NULL
           OR EXCLUDED.github_updated_at >= pr.github_updated_at
        """,
        {
            "repo": head.repo,
            "number": head.number,
            "head_sha": head.head_sha,
            "base_ref": head.base_ref,
            "github_updated_at": head.github_updated_at,
        },
    )


async def is_superseded(
    connection: psycopg.AsyncConnection[Any],
    *,
    repo: str,
    number: int,
    head_sha: str,
    requested_at: datetime.datetime | None,
) -> bool:
    """True when a different head was recorded for the PR after this check was requested.

    A re-run asked for an old commit after the newer push is not superseded: it was asked
    for explicitly, later."""
    cursor = await connection.execute(
        "SELECT head_sha, updated_at FROM pull_requests WHERE repo = %s AND number = %s",
        (repo, number),
    )
    row = await cursor.fetchone()
    if row is None or row[0] == head_sha:
        return False
    return requested_at is None or row[1] > requested_at


async def recorded_head(
    connection: psycopg.AsyncConnection[Any], *, repo: str, number: int
) -> tuple[str, datetime.datetime] | None:
    """(head sha, when this service first recorded it) of the PR, if it saw one."""
    cursor = await connection.execute(
        "SELECT head_sha, updated_at FROM pull_requests WHERE repo = %s AND number = %s",
        (repo, number),
    )
    row = await cursor.fetchone()
    return (str(row[0]), row[1]) if row else None


async def forget_pull_request(
    connection: psycopg.AsyncConnection[Any], *, repo: str, number: int
) -> None:
    """A closed PR: no later event (a membership change) re-evaluates it."""
    await connection.execute(
        "DELETE FROM pull_requests WHERE repo = %s AND number = %s", (repo, number)
    )


async def pull_requests_with_head(
    connection: psycopg.AsyncConnection[Any], repo: str, head_sha: str
) -> list[int]:
    cursor = await connection.execute(
        "SELECT number FROM pull_requests WHERE repo = %s AND head_sha = %s ORDER BY number",
        (repo, head_sha),
    )
    return [int(row[0]) for row in await cursor.fetchall()]


async def count_jobs_by_status(connection: psycopg.AsyncConnection[Any]) -> dict[str, int]:
    cursor = await connection.execute(
        "SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY status"
    )
    return {str(status): int(count) for status, count in await cursor.fetchall()}


# -- analyses and sandbox approvals -------------------------------------------------------------


@dataclass(frozen=True)
class Analysis:
    """One finished check of a pull request's head commit."""

    head_sha: str
    migration_fingerprint: str | None
    conclusion: str
    report: dict[str, Any]
    id: int | None = None  # set once stored


async def latest_analysis(
    connection: psycopg.AsyncConnection[Any], *, repo: str, number: int, head_sha: str
) -> Analysis | None:
    cursor = await connection.execute(
        "SELECT head_sha, migration_fingerprint, conclusion, report, id FROM analyses"
        " WHERE repo = %s AND number = %s AND head_sha = %s ORDER BY id DESC LIMIT 1",
        (repo, number, head_sha),
    )
    row = await cursor.fetchone()
    return Analysis(row[0], row[1], row[2], row[3], int(row[4])) if row else None


async def migration_fingerprints(
    connection: psycopg.AsyncConnection[Any], *, repo: str, number: int
) -> dict[str, str]:
    """The approval fingerprint (column `migration_fingerprint`, see bot.migrations.inputs)
    of every analysed commit of the PR (latest analysis wins)."""
    cursor = await connection.execute(
        "SELECT DISTINCT ON (head_sha) head_sha, migration_fingerprint FROM analyses"
        " WHERE repo = %s AND number = %s AND migration_fingerprint IS NOT NULL"
        " ORDER BY head_sha, id DESC",
        (repo, number),
    )
    return {row[0]: row[1] for row in await cursor.fetchall()}


async def approve_sandbox(
    connection: psycopg.AsyncConnection[Any], *, repo: str, number: int, head_sha: str, by: str
) -> None:
    await connection.execute(
        "INSERT INTO sandbox_approvals (repo, number, head_sha, approved_by)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (repo, number, head_sha, by),
    )


async def sandbox_approved(
    connection: psycopg.AsyncConnection[Any], *, repo: str, number: int, head_sha: str
) -> bool:
    cursor = await connection.execute(
        "SELECT 1 FROM sandbox_approvals WHERE repo = %s AND number = %s AND head_sha = %s",
        (repo, number, head_sha),
    )
    return await cursor.fetchone() is not None


async def pull_requests_awaiting_approval(
    connection: psycopg.AsyncConnection[Any], *, owner: str
) -> list[tuple[str, int, str]]:
    """(repo, number, head sha) of the PRs of `owner`'s repositories whose current head's
    latest analysis needs approvals: the gates a membership change can open or close."""
    cursor = await connection.execute(
        """
        SELECT pr.repo, pr.number, pr.head_sha FROM pull_requests pr
        JOIN LATERAL (
            SELECT report FROM analyses a
            WHERE a.repo = pr.repo AND a.number = pr.number AND a.head_sha = pr.head_sha
            ORDER BY a.id DESC LIMIT 1
        ) latest ON true
        WHERE lower(split_part(pr.repo, '/', 1)) = lower(%s)
          AND jsonb_array_length(COALESCE(latest.report -> 'approvals_required', '[]')) > 0
        ORDER BY pr.repo, pr.number
        """,
        (owner,),
    )
    return [(row[0], int(row[1]), row[2]) for row in await cursor.fetchall()]
