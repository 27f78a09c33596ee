"""constraint names by the naming convention, not by PostgreSQL's defaults

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 13:10:00.000000

0001..0004 left eleven constraints unnamed, so PostgreSQL named them (`clients_pkey`,
`settlements_reference_key`, `messages_replay_of_fkey`, ...). `tables.metadata` now has a naming
convention; this renames those constraints to its names. A primary key's or unique constraint's
index is renamed with it. Renaming changes only the catalog, but it takes a brief ACCESS EXCLUSIVE
lock on each table (it waits for transactions running on it).
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# (table, PostgreSQL's default name, the naming convention's name)
RENAMES = (
    ("clients", "clients_pkey", "pk_clients"),
    ("clients", "clients_secret_sha256_key", "uq_clients_secret_sha256"),
    ("messages", "messages_pkey", "pk_messages"),
    ("messages", "messages_replay_of_fkey", "fk_messages_replay_of_messages"),
    ("journey", "journey_pkey", "pk_journey"),
    ("outbox", "outbox_pkey", "pk_outbox"),
    ("settlements", "settlements_pkey", "pk_settlements"),
    ("settlements", "settlements_reference_key", "uq_settlements_reference"),
    (
        "settlement_items",
        "settlement_items_settlement_id_fkey",
        "fk_settlement_items_settlement_id_settlements",
    ),
    ("settlement_rows", "settlement_rows_settlement_id_fkey", "fk_settlement_rows_settlement_id_settlements"),
    ("parties", "parties_pkey", "pk_parties"),
)


def upgrade() -> None:
    """Apply this revision."""
    for table, old, new in RENAMES:
        op.execute(f"ALTER TABLE {table} RENAME CONSTRAINT {old} TO {new}")


def downgrade() -> None:
    """Revert this revision."""
    for table, old, new in reversed(RENAMES):
        op.execute(f"ALTER TABLE {table} RENAME CONSTRAINT {new} TO {old}")
