"""parties and finished files

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 11:36:51.869971
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.add_column("settlements", sa.Column("invoice_written_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "files",
        sa.Column("sender", sa.String(length=100), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=12), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("sender", "sha256", "name", name="pk_files"),
    )
    op.create_table(
        "parties",
        sa.Column("business_id", sa.String(length=9), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("street", sa.String(length=200), server_default="", nullable=False),
        sa.Column("postcode", sa.String(length=10), server_default="", nullable=False),
        sa.Column("town", sa.String(length=100), server_default="", nullable=False),
        sa.Column("iban", sa.String(length=34), nullable=True),
        sa.Column("bic", sa.String(length=11), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("business_id", name=op.f("parties_pkey")),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_column("settlements", "invoice_written_at")
    op.drop_table("parties")
    op.drop_table("files")
