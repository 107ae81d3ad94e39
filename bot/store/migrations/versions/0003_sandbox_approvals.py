"""sandbox approvals: which fork commits a writer allowed into the sandbox

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 12:00:00

A new table only: nothing existing is locked or rewritten; the checklist's timeouts are
set all the same.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _set_timeouts() -> None:
    # The checklist's timeouts: never queue behind a long lock, never run unbounded.
    op.execute("SET lock_timeout = '30s'")
    op.execute("SET statement_timeout = '5min'")


def upgrade() -> None:
    _set_timeouts()
    # Code from a fork runs in the sandbox only for a head commit a writer asked for.
    op.create_table(
        "sandbox_approvals",
        sa.Column("repo", sa.Text(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("head_sha", sa.Text(), nullable=False),
        sa.Column("approved_by", sa.Text(), nullable=False),
        sa.Column(
            "approved_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("repo", "number", "head_sha"),
    )


def downgrade() -> None:
    _set_timeouts()
    # Drops only the table upgrade() created: the approvals of fork commits.
    op.drop_table("sandbox_approvals")
