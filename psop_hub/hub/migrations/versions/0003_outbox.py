"""outbox table instead of published_at; no journey foreign key

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 11:03:55.989159
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""

    op.create_table(
        "outbox",
        sa.Column("hub_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("hub_id", name=op.f("outbox_pkey")),
    )
    op.create_index("ix_outbox_created", "outbox", ["created_at"], unique=False)
    # Messages stored but never confirmed must still be sent after the upgrade.
    op.execute(
        "INSERT INTO outbox (hub_id, created_at) "
        "SELECT hub_id, received_at FROM messages WHERE published_at IS NULL"
    )
    op.drop_constraint(op.f("journey_hub_id_fkey"), "journey", type_="foreignkey")
    op.drop_index(
        op.f("ix_messages_unpublished"), table_name="messages", postgresql_where="(published_at IS NULL)"
    )
    op.drop_column("messages", "published_at")
    op.create_index(
        "ix_settlement_items_delivery", "settlement_items", ["provider", "event_id"], unique=False
    )


def downgrade() -> None:
    """Revert this revision."""

    op.drop_index("ix_settlement_items_delivery", table_name="settlement_items")
    op.add_column(
        "messages",
        sa.Column("published_at", postgresql.TIMESTAMP(timezone=True), autoincrement=False, nullable=True),
    )
    op.create_index(
        op.f("ix_messages_unpublished"),
        "messages",
        ["received_at"],
        unique=False,
        postgresql_where="(published_at IS NULL)",
    )
    op.create_foreign_key(op.f("journey_hub_id_fkey"), "journey", "messages", ["hub_id"], ["hub_id"])
    op.execute("UPDATE messages SET published_at = now() WHERE hub_id NOT IN (SELECT hub_id FROM outbox)")
    op.drop_index("ix_outbox_created", table_name="outbox")
    op.drop_table("outbox")
