"""domain: orders, settlements, delivery settlement ledger

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 10:33:15.990136
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.execute(sa.schema.CreateSequence(sa.Sequence("settlement_reference_seq")))
    op.create_table(
        "orders",
        sa.Column("organiser", sa.String(length=9), nullable=False),
        sa.Column("order_number", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=9), nullable=False),
        sa.Column("client_hetu", sa.String(length=11), nullable=False),
        sa.Column("home_municipality", sa.String(length=3), nullable=False),
        sa.Column("service_code", sa.String(length=50), nullable=False),
        sa.Column("service_name", sa.String(length=200), nullable=False),
        sa.Column("unit", sa.String(length=10), nullable=False),
        sa.Column("unit_price", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column(
            "quantity_used", sa.Numeric(precision=14, scale=2), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("organiser", "order_number", name="pk_orders"),
    )
    op.create_table(
        "settlements",
        sa.Column("settlement_id", sa.String(length=100), nullable=False),
        sa.Column("organiser", sa.String(length=9), nullable=False),
        sa.Column("provider", sa.String(length=9), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("reference", sa.String(length=20), nullable=False),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("paid_date", sa.Date(), nullable=True),
        sa.Column("paid_amount", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("payment_reference", sa.String(length=40), nullable=True),
        sa.Column("payment_hub_id", sa.UUID(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("settlement_id", name=op.f("settlements_pkey")),
        sa.UniqueConstraint("organiser", "provider", "month", name="uq_settlements_period"),
        sa.UniqueConstraint("reference", name=op.f("settlements_reference_key")),
    )
    op.create_table(
        "settlement_items",
        sa.Column("settlement_id", sa.String(length=100), nullable=False),
        sa.Column("provider", sa.String(length=9), nullable=False),
        sa.Column("event_id", sa.String(length=100), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.ForeignKeyConstraint(
            ["settlement_id"], ["settlements.settlement_id"], name=op.f("settlement_items_settlement_id_fkey")
        ),
        sa.PrimaryKeyConstraint("settlement_id", "provider", "event_id", name="pk_settlement_items"),
    )
    op.create_table(
        "settlement_rows",
        sa.Column("settlement_id", sa.String(length=100), nullable=False),
        sa.Column("row_number", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("service_code", sa.String(length=50), nullable=False),
        sa.Column("service_name", sa.String(length=200), nullable=False),
        sa.Column("unit", sa.String(length=10), nullable=False),
        sa.Column("unit_price", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.ForeignKeyConstraint(
            ["settlement_id"], ["settlements.settlement_id"], name=op.f("settlement_rows_settlement_id_fkey")
        ),
        sa.PrimaryKeyConstraint("settlement_id", "row_number", name="pk_settlement_rows"),
    )
    op.add_column("deliveries", sa.Column("service_code", sa.String(length=50), nullable=True))
    op.add_column("deliveries", sa.Column("service_name", sa.String(length=200), nullable=True))
    op.add_column(
        "deliveries",
        sa.Column(
            "settled_quantity", sa.Numeric(precision=14, scale=2), server_default=sa.text("0"), nullable=False
        ),
    )
    op.add_column(
        "deliveries",
        sa.Column(
            "settled_amount", sa.Numeric(precision=14, scale=2), server_default=sa.text("0"), nullable=False
        ),
    )
    op.create_index("ix_deliveries_order", "deliveries", ["organiser", "order_number"], unique=False)
    op.create_index(
        "ix_deliveries_settle", "deliveries", ["organiser", "provider", "service_date"], unique=False
    )
    op.add_column("vouchers", sa.Column("revoked_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    op.execute(sa.schema.DropSequence(sa.Sequence("settlement_reference_seq")))
    op.drop_column("vouchers", "revoked_reason")
    op.drop_index("ix_deliveries_settle", table_name="deliveries")
    op.drop_index("ix_deliveries_order", table_name="deliveries")
    op.drop_column("deliveries", "settled_amount")
    op.drop_column("deliveries", "settled_quantity")
    op.drop_column("deliveries", "service_name")
    op.drop_column("deliveries", "service_code")
    op.drop_table("settlement_rows")
    op.drop_table("settlement_items")
    op.drop_table("settlements")
    op.drop_table("orders")
