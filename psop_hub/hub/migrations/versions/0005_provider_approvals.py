"""provider approvals (hyväksytyt palveluntuottajat)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 12:15:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "provider_approvals",
        sa.Column("organiser", sa.String(length=9), nullable=False),
        sa.Column("provider", sa.String(length=9), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("service_codes", postgresql.ARRAY(sa.String(length=50)), nullable=True),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("hub_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("organiser", "provider", name="pk_provider_approvals"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("provider_approvals")
