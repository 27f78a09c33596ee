"""initial schema: clients, messages, journey, inbox, vouchers, deliveries

Revision ID: 0001
Revises:
Create Date: 2026-11-29 10:18:27.923468
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""

    op.create_table(
        "clients",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("organiser", sa.String(length=9), nullable=True),
        sa.Column("provider", sa.String(length=9), nullable=True),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("clients_pkey")),
        sa.UniqueConstraint("secret_sha256", name=op.f("clients_secret_sha256_key")),
    )
    op.create_table(
        "deliveries",
        sa.Column("provider", sa.String(length=9), nullable=False),
        sa.Column("event_id", sa.String(length=100), nullable=False),
        sa.Column("organiser", sa.String(length=9), nullable=False),
        sa.Column("voucher_number", sa.String(length=100), nullable=True),
        sa.Column("order_number", sa.String(length=100), nullable=True),
        sa.Column("service_date", sa.Date(), nullable=False),
        sa.Column("unit", sa.String(length=10), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("price", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("unit_paid", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("voucher_share", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("client_share", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("hub_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("provider", "event_id", name="pk_deliveries"),
    )
    op.create_index("ix_deliveries_voucher", "deliveries", ["organiser", "voucher_number"], unique=False)
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(length=40), nullable=False),
        sa.Column("hub_id", sa.UUID(), nullable=False),
        sa.Column("outcome", sa.String(length=12), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "hub_id", name="pk_inbox"),
    )
    op.create_table(
        "messages",
        sa.Column("hub_id", sa.UUID(), nullable=False),
        sa.Column("sender", sa.String(length=100), nullable=False),
        sa.Column("message_id", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("correlation_id", sa.String(length=100), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("payload_sha256", sa.String(length=64), nullable=False),
        sa.Column("organiser", sa.String(length=9), nullable=True),
        sa.Column("provider", sa.String(length=9), nullable=True),
        sa.Column("reference", sa.String(length=100), nullable=True),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column(
            "errors",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("replay_of", sa.UUID(), nullable=True),
        sa.ForeignKeyConstraint(["replay_of"], ["messages.hub_id"], name=op.f("messages_replay_of_fkey")),
        sa.PrimaryKeyConstraint("hub_id", name=op.f("messages_pkey")),
        sa.UniqueConstraint("sender", "message_id", name="uq_messages_sender_message_id"),
    )
    op.create_index("ix_messages_correlation", "messages", ["correlation_id"], unique=False)
    op.create_index("ix_messages_received", "messages", ["received_at"], unique=False)
    op.create_index("ix_messages_reference", "messages", ["reference"], unique=False)
    op.create_index("ix_messages_status_received", "messages", ["status", "received_at"], unique=False)
    op.create_index(
        "ix_messages_unpublished",
        "messages",
        ["received_at"],
        unique=False,
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "vouchers",
        sa.Column("organiser", sa.String(length=9), nullable=False),
        sa.Column("voucher_number", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("decision_date", sa.Date(), nullable=False),
        sa.Column("client_hetu", sa.String(length=11), nullable=False),
        sa.Column("home_municipality", sa.String(length=3), nullable=False),
        sa.Column("service_code", sa.String(length=50), nullable=False),
        sa.Column("service_name", sa.String(length=200), nullable=False),
        sa.Column("unit", sa.String(length=10), nullable=False),
        sa.Column("unit_value", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column(
            "quantity_used", sa.Numeric(precision=14, scale=2), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=False),
        sa.Column("provider", sa.String(length=9), nullable=True),
        sa.Column("provider_price", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("assigned_from", sa.Date(), nullable=True),
        sa.Column("effective_end", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("organiser", "voucher_number", name="pk_vouchers"),
    )
    op.create_table(
        "journey",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("hub_id", sa.UUID(), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()"), nullable=False
        ),
        sa.Column("step", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(["hub_id"], ["messages.hub_id"], name=op.f("journey_hub_id_fkey")),
        sa.PrimaryKeyConstraint("id", name=op.f("journey_pkey")),
    )
    op.create_index("ix_journey_hub_id", "journey", ["hub_id", "id"], unique=False)


def downgrade() -> None:
    """Revert this revision."""

    op.drop_index("ix_journey_hub_id", table_name="journey")
    op.drop_table("journey")
    op.drop_table("vouchers")
    op.drop_index(
        "ix_messages_unpublished", table_name="messages", postgresql_where=sa.text("published_at IS NULL")
    )
    op.drop_index("ix_messages_status_received", table_name="messages")
    op.drop_index("ix_messages_reference", table_name="messages")
    op.drop_index("ix_messages_received", table_name="messages")
    op.drop_index("ix_messages_correlation", table_name="messages")
    op.drop_table("messages")
    op.drop_table("inbox")
    op.drop_index("ix_deliveries_voucher", table_name="deliveries")
    op.drop_table("deliveries")
    op.drop_table("clients")
