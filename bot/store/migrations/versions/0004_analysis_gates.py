"""analysis gates: the approval gate's latest verdict per analysis, for the report page

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 15:00:00

A new table only, so nothing existing is rewritten. Its foreign key takes a brief SHARE ROW
EXCLUSIVE lock on analyses (no scan: the new table is empty); the checklist's timeouts
bound the wait. An index on analyses.created_at serves the retention purge: built
CONCURRENTLY (outside the transaction) so that writes to analyses never wait for it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _set_timeouts() -> None:
    # The checklist's timeouts: never queue behind a long lock, never run unbounded.
    op.execute("SET lock_timeout = '30s'")
    op.execute("SET statement_timeout = '5min'")


def upgrade() -> None:
    _set_timeouts()
    # The gate is re-evaluated on every review: one row per analysis, overwritten.
    op.create_table(
        "analysis_gates",
        sa.Column(
            "analysis_id",
            sa.BigInteger(),
            sa.ForeignKey("analyses.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("gate", postgresql.JSONB(), nullable=False),
        sa.Column(
            "evaluated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    with op.get_context().autocommit_block():
        op.create_index(
            "analyses_created_at_idx",
            "analyses",
            ["created_at"],
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    _set_timeouts()
    # Drops only what upgrade() created above.
    with op.get_context().autocommit_block():
        op.drop_index(
            "analyses_created_at_idx",
            table_name="analyses",
            postgresql_concurrently=True,
            if_exists=True,
        )
    op.drop_table("analysis_gates")
