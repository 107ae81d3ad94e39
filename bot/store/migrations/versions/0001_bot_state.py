"""migsafe's own state: webhook deliveries, pull request heads, analyses

Revision ID: 0001
Revises:
Create Date: 2026-11-26 09:00:00

Every table is new, so nothing here locks or rewrites existing data; the timeouts are
set anyway, as the checklist asks of every migration (and migsafe checks its own).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _set_timeouts() -> None:
    # The checklist's timeouts: never queue behind a long lock, never run unbounded.
    op.execute("SET lock_timeout = '30s'")
    op.execute("SET statement_timeout = '5min'")


def upgrade() -> None:
    _set_timeouts()
    # One row per accepted webhook delivery: its id (X-GitHub-Delivery) is the
    # idempotency key, and the payload stays so a job can always be re-run from it.
    op.create_table(
        "deliveries",
        sa.Column("delivery_id", sa.Text(), primary_key=True),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=True),
        sa.Column("installation_id", sa.BigInteger(), nullable=True),
        sa.Column("repo", sa.Text(), nullable=True),
        sa.Column(
            "received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        # procrastinate_jobs ids the delivery enqueued (a check suite may name several PRs).
        sa.Column(
            "job_ids",
            postgresql.ARRAY(sa.BigInteger()),
            nullable=False,
            server_default=sa.text("'{}'::bigint[]"),
        ),
    )
    op.create_index("deliveries_received_at_idx", "deliveries", ["received_at"])
    # The newest head known per pull request: a queued check of an older head is superseded.
    op.create_table(
        "pull_requests",
        sa.Column("repo", sa.Text(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("head_sha", sa.Text(), nullable=False),
        sa.Column("base_ref", sa.Text(), nullable=True),
        # GitHub's pull_request.updated_at: orders events that arrive out of order.
        sa.Column("github_updated_at", sa.DateTime(timezone=True), nullable=True),
        # Our clock: when head_sha was last recorded (compared with deliveries.received_at).
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("repo", "number"),
    )
    # A check suite of a fork names no pull request: jobs look them up by head sha.
    op.create_index("pull_requests_head_sha_idx", "pull_requests", ["repo", "head_sha"])
    op.create_table(
        "analyses",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("repo", sa.Text(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("head_sha", sa.Text(), nullable=False),
        sa.Column("migration_fingerprint", sa.Text(), nullable=True),
        sa.Column("conclusion", sa.Text(), nullable=False),
        sa.Column("report", postgresql.JSONB(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_index("analyses_pull_request_idx", "analyses", ["repo", "number", "head_sha"])


def downgrade() -> None:
    _set_timeouts()
    # Drops only what upgrade() created above.
    op.drop_index("analyses_pull_request_idx", table_name="analyses")
    op.drop_table("analyses")
    op.drop_index("pull_requests_head_sha_idx", table_name="pull_requests")
    op.drop_table("pull_requests")
    op.drop_index("deliveries_received_at_idx", table_name="deliveries")
    op.drop_table("deliveries")
