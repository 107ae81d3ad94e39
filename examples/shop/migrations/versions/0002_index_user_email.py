"""index users.email, the safe way

Revision ID: 0002
Revises: 0001
Create Date: 2026-09-15 10:00:00
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '30s'")
    op.execute("SET statement_timeout = '5min'")
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_users_email", "users", ["email"], unique=True, postgresql_concurrently=True
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index("ix_users_email", table_name="users", postgresql_concurrently=True)
