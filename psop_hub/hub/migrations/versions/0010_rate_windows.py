"""per-sender rate limit windows

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 17:00:00.000000

One row per sender and minute, counted by every API replica with one upsert, so that
HUB_RATE_LIMIT_PER_MINUTE holds across replicas (INTERFACES §6). Rows of past minutes are
deleted as a sender's next minute begins.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "rate_windows",
        sa.Column("sender", sa.String(length=100), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("sender", "window_start", name="pk_rate_windows"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("rate_windows")
