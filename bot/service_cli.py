"""`migsafe serve [--no-worker]`, `migsafe worker`, `migsafe db upgrade`.

`add_commands(commands)` adds the three to bot.cli's sub-parsers. Without DATABASE_URL
the state lives in the embedded cluster, migrated automatically at start-up; with it,
`migsafe db upgrade` is a deployment step and serve/worker refuse an old schema.

Importing this module must stay cheap: bot.cli imports it to build its parser, for every
command (`migsafe --version`, `migsafe check`). The service stack (aiohttp, procrastinate,
prometheus_client, gidgethub, jinja2, SQLAlchemy) is imported inside the commands that run
it; tests/test_cli_imports.py holds the line.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot import hardening
from bot.errors import UserError

if TYPE_CHECKING:
    from aiohttp import web

    from bot.jobs import JobQueue
    from bot.settings import Settings
    from bot.store import db

logger = logging.getLogger("migsafe.service")


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    serve_parser = commands.add_parser(
        "serve",
        help="run the GitHub App: webhook server and a worker",
        description="Serve POST /webhook, /healthz, /readyz and /metrics on $PORT.",
    )
    serve_parser.add_argument(
        "--no-worker", action="store_true", help="web only; run `migsafe worker` beside it"
    )
    serve_parser.set_defaults(run=lambda args: serve(worker=not args.no_worker))
    worker_parser = commands.add_parser(
        "worker", help="run a job worker (several replicas may share the queue)"
    )
    worker_parser.set_defaults(run=lambda args: worker())
    db_parser = commands.add_parser("db", help="the GitHub App's own database")
    db_commands = db_parser.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    upgrade_parser = db_commands.add_parser(
        "upgrade", help="create or migrate its tables and the job queue's schema"
    )
    upgrade_parser.set_defaults(run=lambda args: db_upgrade())


# -- the commands -------------------------------------------------------------------------------


def db_upgrade() -> int:
    """Needs only DATABASE_URL (or MIGSAFE_DATA_DIR for the embedded cluster)."""
    from bot.settings import default_data_dir
    from bot.store import db

    data_dir = Path(os.environ.get("MIGSAFE_DATA_DIR") or default_data_dir()).expanduser()
    state = db.locate_state_database(os.environ.get("DATABASE_URL") or None, data_dir)
    try:
        db.upgrade(state.conninfo)
        print(f"migsafe: state database at revision {db.current_revision(state.conninfo)}")
    finally:
        state.close()
    return 0


def serve(*, worker: bool = True) -> int:
    from aiohttp import web

    from bot import service
    from bot.jobs import JobQueue
    from bot.webhooks.app import build_web_app

    settings = start_up()
    state = _ready_state_database(settings)
    try:
        _check_credentials(settings)
        queue = JobQueue(
            state.conninfo,
            handlers=service.handlers(),
            settings=settings,
            stalled_after_s=settings.stalled_worker_s,
        )
        app = build_web_app(webhook_secret=settings.webhook_secret, queue=queue)
        app.cleanup_ctx.append(_lifecycle(queue, state, settings, with_worker=worker))
        web.run_app(app, port=settings.port, print=None, access_log=None)
    finally:
        state.close()
    return 0


def worker() -> int:
    import asyncio

    settings = start_up()
    state = _ready_state_database(settings)
    try:
        _check_credentials(settings)
        asyncio.run(_run_worker(settings, state))
    finally:
        state.close()
    return 0


# -- plumbing ------------------------------------------------------------------------------------


def start_up() -> Settings:
    """What serve and worker do first: read and check every setting, then put the secrets out
    of reach of every other process before anything else runs (no repository code, no thread,
    no connection yet). Validation comes first so that a bad setting changes nothing."""
    from bot.settings import load_settings

    settings = load_settings()
    _check_backup_source()
    sealed = hardening.make_non_dumpable()
    removed = hardening.remove_secrets()
    _configure_logging()
    if not sealed:
        logger.warning(
            "could not make the process non-dumpable (prctl PR_SET_DUMPABLE): processes of "
            "the same user can read its memory and its initial environment"
        )
    logger.debug("removed from the environment after reading: %s", ", ".join(removed) or "none")
    return settings


def _check_backup_source() -> None:
    """The gate reads MIGSAFE_BACKUP_* at each run: a bad value stops start-up instead (the
    UserError names the variable)."""
    from bot.policy.backup import BackupSourceSettings

    BackupSourceSettings.from_env()


def _configure_logging() -> None:
    """MIGSAFE_LOG_LEVEL (INFO by default). Below DEBUG each failure is one line: the
    tracebacks, migsafe's and those procrastinate's worker attaches to a failed job, are
    logged only at DEBUG (bot.service_logging.QuietTracebacks)."""
    from bot import service_logging

    service_logging.configure(os.environ.get("MIGSAFE_LOG_LEVEL", "INFO"))


def _check_credentials(settings: Settings) -> None:
    """`GET /app` with the App's JWT: a wrong key, App id or API URL stops start-up with one
    line (bot.github.app_check), not the first job. After the state database, so that the
    local settings are all checked before GitHub is asked."""
    from bot.github.app_check import check_app_credentials

    logger.info("%s", check_app_credentials(settings))


def _ready_state_database(settings: Settings) -> db.StateDatabase:
    from bot.store import db

    state = db.open_state_database(settings)
    try:
        if state.cluster is not None:
            db.upgrade(state.conninfo)  # private to this process: keep it current
        elif db.current_revision(state.conninfo) != db.head_revision():
            raise UserError("DATABASE_URL: the schema is not current; run `migsafe db upgrade`")
    except BaseException:
        state.close()
        raise
    return state


def _lifecycle(
    queue: JobQueue, state: db.StateDatabase, settings: Settings, *, with_worker: bool
) -> Callable[[web.Application], AsyncIterator[None]]:
    """aiohttp cleanup context: the pool and the queue, and the worker beside the web."""
    import asyncio

    from bot.store import db

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        pool = await db.open_pool(state.conninfo)
        await queue.open(pool)
        worker_task = None
        if with_worker:
            worker_task = asyncio.create_task(
                queue.run_worker(
                    concurrency=settings.worker_concurrency, install_signal_handlers=False
                ),
                name="migsafe-worker",
            )
        mode = "web + worker" if with_worker else "web only"
        logger.info("serving on port %s (%s)", settings.port, mode)
        try:
            yield
        finally:
            if worker_task is not None:
                worker_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker_task
            await queue.close()
            await pool.close()

    return lifecycle


async def _run_worker(settings: Settings, state: db.StateDatabase) -> None:
    from bot import service
    from bot.jobs import JobQueue
    from bot.store import db

    pool = await db.open_pool(state.conninfo)
    queue = JobQueue(
        state.conninfo,
        handlers=service.handlers(),
        settings=settings,
        stalled_after_s=settings.stalled_worker_s,
    )
    try:
        await queue.open(pool)
        await queue.run_worker(concurrency=settings.worker_concurrency)
    finally:
        await queue.close()
        await pool.close()
