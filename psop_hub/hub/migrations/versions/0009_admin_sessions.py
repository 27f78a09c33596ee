"""admin page sessions

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-01 16:00:00.000000

The admin page's sign-ins live in PostgreSQL so that every API replica sees them and a sign-out
or a revoked client takes effect at once. (0008 belongs to the parallel work on issue 11: when it
lands here, this revision is re-pointed to revise it.)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "admin_sessions",
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("client", sa.String(length=100), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column(
            "last_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["client"], ["clients.name"], name="fk_admin_sessions_client_clients", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("token_sha256", name="pk_admin_sessions"),
    )
    op.create_index("ix_admin_sessions_last_seen", "admin_sessions", ["last_seen_at"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_admin_sessions_last_seen", table_name="admin_sessions")
    op.drop_table("admin_sessions")
