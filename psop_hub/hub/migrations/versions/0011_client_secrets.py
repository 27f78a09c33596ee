"""client secrets with a life cycle: rotation with a grace period, expiry

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 10:00:00.000000

A client may hold more than one secret at a time: `hub clients rotate` adds a new one and gives
the old one an end (its grace period). Every secret has an expiry (HUB_SECRET_LIFETIME, a year
by default). Only the SHA-256 of a secret is stored, as before; the one digest of each client
moves from `clients.secret_sha256` into `client_secrets`. A secret that existed before this
revision expires a year after the upgrade (not after its creation: nobody's secret stops the day
the hub is upgraded).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "client_secrets",
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("client", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("replaced_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["client"], ["clients.name"], name="fk_client_secrets_client_clients", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("secret_sha256", name="pk_client_secrets"),
    )
    op.create_index("ix_client_secrets_client", "client_secrets", ["client"])
    op.execute(
        "INSERT INTO client_secrets (secret_sha256, client, created_at, expires_at) "
        "SELECT secret_sha256, name, created_at, now() + interval '365 days' FROM clients"
    )
    op.drop_constraint("uq_clients_secret_sha256", "clients", type_="unique")
    op.drop_column("clients", "secret_sha256")


def downgrade() -> None:
    """Revert this revision: each client keeps its newest secret."""
    op.add_column("clients", sa.Column("secret_sha256", sa.String(length=64), nullable=True))
    op.execute(
        "UPDATE clients c SET secret_sha256 = ("
        "SELECT s.secret_sha256 FROM client_secrets s WHERE s.client = c.name "
        "ORDER BY s.created_at DESC, s.expires_at DESC LIMIT 1)"
    )
    # A client without any secret (none can exist, but a downgrade must not fail on one).
    op.execute(
        "UPDATE clients SET secret_sha256 = md5(random()::text) || md5(random()::text) "
        "WHERE secret_sha256 IS NULL"
    )
    op.alter_column("clients", "secret_sha256", nullable=False)
    op.create_unique_constraint("uq_clients_secret_sha256", "clients", ["secret_sha256"])
    op.drop_index("ix_client_secrets_client", table_name="client_secrets")
    op.drop_table("client_secrets")
