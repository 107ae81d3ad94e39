"""orders cleanup: API keys, money as numeric, status index

The risky change this example is about: every operation below is one that
migsafe reports, as a reviewer in a hurry might merge it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-20 10:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("api_key", sa.Text(), nullable=False, server_default=sa.text("gen_random_uuid()")),
    )
    op.alter_column("orders", "total", type_=sa.Numeric(12, 2))
    op.drop_column("orders", "legacy_code")
    op.create_index("ix_orders_status", "orders", ["status"])
    op.create_foreign_key("fk_orders_user", "orders", "users", ["user_id"], ["id"])
    op.alter_column("users", "name", new_column_name="full_name")
    op.execute("UPDATE orders SET status = 'open' WHERE status = 'new'")


def downgrade() -> None:
    # Deliberately broken: legacy_code comes back empty and the index stays.
    op.execute("UPDATE orders SET status = 'new' WHERE status = 'open'")
    op.alter_column("users", "full_name", new_column_name="name")
    op.drop_constraint("fk_orders_user", "orders", type_="foreignkey")
    op.add_column("orders", sa.Column("legacy_code", sa.String(20), nullable=True))
    op.alter_column("orders", "total", type_=sa.Integer())
    op.drop_column("users", "api_key")
