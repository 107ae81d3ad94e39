"""add attribution_events.processing_status, add-then-backfill-then-swap

Written exactly as the Migration Safety Checklist's example, with both
timeouts set first.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-01 09:00:00
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '30s'")
    op.execute("SET statement_timeout = '5min'")
    # Step 1: Add nullable column
    op.execute("ALTER TABLE attribution_events ADD COLUMN processing_status VARCHAR(20) NULL")
    # Step 2: Backfill existing rows
    op.execute(
        "UPDATE attribution_events SET processing_status = 'processed' "
        "WHERE processing_status IS NULL"
    )
    # Step 3: Add NOT NULL constraint
    op.execute("ALTER TABLE attribution_events ALTER COLUMN processing_status SET NOT NULL")
    # Step 4: Add default for new rows
    op.execute(
        "ALTER TABLE attribution_events ALTER COLUMN processing_status SET DEFAULT 'pending'"
    )


def downgrade() -> None:
    op.execute("SET lock_timeout = '30s'")
    op.execute("SET statement_timeout = '5min'")
    op.drop_column("attribution_events", "processing_status")
