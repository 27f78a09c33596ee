"""admin: search indexes, the append-only audit log, bulk replay jobs

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 09:00:00.000000

The audit log is append-only for the hub itself: a trigger refuses every UPDATE, DELETE and
TRUNCATE (also for the table's owner and a superuser, who are not checked against grants), and
those grants are revoked from PUBLIC and from the role that runs the migration (the hub's role).
Only a role that may drop or alter the table (its owner) can get around that, on purpose and in
the database's own logs; production should run the hub as a role that does not own its tables.

The new indexes are built with plain CREATE INDEX (migrations run in one transaction): on a large
`messages` table this blocks writes while they are built.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

MESSAGE_INDEXES = (
    ("ix_messages_message_id", ["message_id"]),
    ("ix_messages_type_received", ["type", "received_at"]),
    ("ix_messages_sender_received", ["sender", "received_at"]),
    ("ix_messages_organiser_received", ["organiser", "received_at"]),
    ("ix_messages_provider_received", ["provider", "received_at"]),
    ("ix_messages_replay_of", ["replay_of"]),
)

APPEND_ONLY = """
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def upgrade() -> None:
    """Apply this revision."""
    for name, columns in MESSAGE_INDEXES:
        op.create_index(name, "messages", columns, unique=False)
    op.create_index("ix_messages_event_id", "messages", [sa.text("(payload ->> 'event_id')")], unique=False)

    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()"), nullable=False
        ),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "hub_ids",
            postgresql.ARRAY(sa.UUID()),
            server_default=sa.text("'{}'::uuid[]"),
            nullable=False,
        ),
        sa.Column("job_id", sa.UUID(), nullable=True),
        sa.Column("detail", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"], unique=False)
    op.create_index("ix_audit_log_actor_at", "audit_log", ["actor", "at"], unique=False)
    op.execute(APPEND_ONLY)
    op.execute(
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
    )
    op.execute(
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()"
    )
    op.execute("REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC")
    op.execute("REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM CURRENT_USER")

    op.create_table(
        "replay_jobs",
        sa.Column("job_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("filter", postgresql.JSONB(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("matched", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("queued", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("skipped_applied", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("skipped_changed", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("runner", sa.String(length=100), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("job_id", name="pk_replay_jobs"),
    )
    op.create_index("ix_replay_jobs_status", "replay_jobs", ["status", "created_at"], unique=False)
    op.create_table(
        "replay_job_items",
        sa.Column("job_id", sa.UUID(), nullable=False),
        sa.Column("hub_id", sa.UUID(), nullable=False),
        sa.Column("status_then", sa.String(length=12), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["replay_jobs.job_id"], name="fk_replay_job_items_job_id_replay_jobs"
        ),
        sa.PrimaryKeyConstraint("job_id", "hub_id", name="pk_replay_job_items"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("replay_job_items")
    op.drop_index("ix_replay_jobs_status", table_name="replay_jobs")
    op.drop_table("replay_jobs")
    op.drop_table("audit_log")  # its triggers go with it; DROP is not what they refuse
    op.execute("DROP FUNCTION audit_log_append_only()")
    op.drop_index("ix_messages_event_id", table_name="messages")
    for name, _ in reversed(MESSAGE_INDEXES):
        op.drop_index(name, table_name="messages")
