"""a system client acts for one or more organisers

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 06:30:00.000000

`clients.organiser` (one business ID) becomes `clients.organisers`, an array of business IDs: a
`system` client (a shared client information system, an ERP serving several municipalities)
acts for every organiser listed, and for no other. Every existing client keeps exactly its one
organiser; a client of another role gets an empty array. One representation only: the old
column is dropped (an API replica of the previous release reading it fails until it is
replaced, as with 0011: run `migrate`, then roll the replicas).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.add_column(
        "clients",
        sa.Column(
            "organisers",
            postgresql.ARRAY(sa.String(length=9)),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
    )
    op.execute("UPDATE clients SET organisers = ARRAY[organiser] WHERE organiser IS NOT NULL")
    op.drop_column("clients", "organiser")


def downgrade() -> None:
    """Revert this revision: a client keeps its first organiser only."""
    op.add_column("clients", sa.Column("organiser", sa.String(length=9), nullable=True))
    op.execute("UPDATE clients SET organiser = organisers[1]")
    op.drop_column("clients", "organisers")
