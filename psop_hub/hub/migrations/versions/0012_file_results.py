"""file results, waiting messages, and the service month of a settlement row

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 19:30:00.000000

`file_results`: one row per receipt written by the file adapter, with the hub_ids of its accepted
records and what the receipt listed; a file adapter writes `NAME.result.json` beside the receipt
once every one of those messages is final, and sets `written_at` (the row lock is the claim, so
of two adapters one writes it).

`ix_messages_waiting`: the messages waiting (`retrying`) for a voucher or order, found when it
arrives so that they are applied in the order received.

`settlement_rows.service_month`: the calendar month the row's deliveries were delivered in. A row
of a settlement for a later month (a late delivery, a correction after settlement) is an
adjustment that names it. Rows built before this revision: their own settlement's month for
delivery rows; adjustments stay NULL (their items may span months).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "file_results",
        sa.Column("sender", sa.String(length=100), nullable=False),
        sa.Column("receipt", sa.String(length=300), nullable=False),
        sa.Column("data_dir", sa.String(length=1000), nullable=False),
        sa.Column("file", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("hub_ids", postgresql.ARRAY(postgresql.UUID(as_uuid=True)), nullable=False),
        sa.Column("listing", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("sender", "receipt", name="pk_file_results"),
    )
    op.create_index("ix_file_results_written", "file_results", ["data_dir", "written_at", "created_at"])
    op.create_index(
        "ix_messages_waiting",
        "messages",
        ["organiser", "reference"],
        postgresql_where=sa.text("status = 'retrying'"),
    )
    op.add_column("settlement_rows", sa.Column("service_month", sa.Date(), nullable=True))
    op.execute(
        "UPDATE settlement_rows r SET service_month = s.month FROM settlements s "
        "WHERE s.settlement_id = r.settlement_id AND r.kind = 'delivery'"
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_column("settlement_rows", "service_month")
    op.drop_index("ix_messages_waiting", table_name="messages")
    op.drop_index("ix_file_results_written", table_name="file_results")
    op.drop_table("file_results")
