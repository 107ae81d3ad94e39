"""procrastinate's job queue schema (procrastinate 3.10.0)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 09:05:00

Applies `procrastinate.schema.SchemaManager.get_schema()` so that `migsafe db upgrade`
sets up everything. The schema text is pinned by its SHA-256: when procrastinate is
upgraded and its schema changes, this revision refuses to apply a schema it was not
written for. Then pin procrastinate back, or add a revision that applies procrastinate's
own migration files (`SchemaManager.get_migrations_path()`) written since 3.10.0.
"""

from __future__ import annotations

import hashlib

from alembic import op
from procrastinate.schema import SchemaManager

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

PROCRASTINATE_VERSION = "3.10.0"
SCHEMA_SHA256 = "c70ec4b400a60ad9592787653aae5ae77ae41bf801d56b5bd2712751a07f2009"
TABLES = (
    "procrastinate_events",
    "procrastinate_periodic_defers",
    "procrastinate_jobs",
    "procrastinate_workers",
)
TYPES = (
    "procrastinate_job_to_defer_v1",
    "procrastinate_job_event_type",
    "procrastinate_job_status",
)


def _set_timeouts() -> None:
    # The checklist's timeouts: never queue behind a long lock, never run unbounded.
    op.execute("SET lock_timeout = '30s'")
    op.execute("SET statement_timeout = '5min'")


def _pinned_schema() -> str:
    schema = SchemaManager.get_schema()
    digest = hashlib.sha256(schema.encode("utf-8")).hexdigest()
    if digest != SCHEMA_SHA256:
        raise RuntimeError(
            f"the installed procrastinate's schema is not the one of {PROCRASTINATE_VERSION} "
            "this revision applies: pin procrastinate or add a revision with its migrations"
        )
    return schema


def upgrade() -> None:
    _set_timeouts()
    # Only new objects (tables, types, functions, triggers of procrastinate).
    op.execute(_pinned_schema())


def downgrade() -> None:
    _set_timeouts()
    # Drops only what upgrade() created: procrastinate's functions (named procrastinate_*,
    # any signature; CASCADE takes the triggers on its tables that call them), its tables,
    # then its types.
    op.execute(
        """
        DO $$
        DECLARE routine regprocedure;
        BEGIN
            FOR routine IN
                SELECT p.oid::regprocedure FROM pg_proc p
                WHERE p.pronamespace = current_schema()::regnamespace
                  AND p.proname LIKE 'procrastinate\\_%'
            LOOP
                EXECUTE 'DROP ROUTINE ' || routine || ' CASCADE';
            END LOOP;
        END;
        $$
        """
    )
    for table in TABLES:
        op.execute(f"DROP TABLE IF EXISTS {table}")
    for type_name in TYPES:
        op.execute(f"DROP TYPE IF EXISTS {type_name}")
