"""the messages' sparse search keys are indexed only where they are set

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 15:00:00.000000

`correlation_id`, `provider`, the payload's `event_id` and `replay_of` are NULL in most messages
(a voucher.granted has none of them), yet every message put an entry for each into its index,
and its status change another four (a changed status is never a HOT update). Their indexes become
partial, `WHERE ... IS NOT NULL`: every query on them asks for a value (`=`, which a NULL never
satisfies), so the planner uses them as before.

Built with CREATE INDEX CONCURRENTLY beside the old index, which is then dropped concurrently:
the hub keeps writing while this runs. An interrupted run leaves at most a `*_new` index (maybe
invalid), which the next run drops and builds again.
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# name, indexed columns or expression, the key that is NULL in most messages
SPARSE = (
    ("ix_messages_correlation", "correlation_id", "correlation_id"),
    ("ix_messages_provider_received", "provider, received_at", "provider"),
    ("ix_messages_event_id", "(payload ->> 'event_id')", "(payload ->> 'event_id')"),
    ("ix_messages_replay_of", "replay_of", "replay_of"),
)


def _rebuild(name: str, columns: str, where: str) -> None:
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}_new")
        op.execute(f"CREATE INDEX CONCURRENTLY {name}_new ON messages ({columns}){where}")
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        op.execute(f"ALTER INDEX {name}_new RENAME TO {name}")


def upgrade() -> None:
    """Apply this revision."""
    for name, columns, key in SPARSE:
        _rebuild(name, columns, f" WHERE {key} IS NOT NULL")


def downgrade() -> None:
    """Revert this revision: every message in each index again."""
    for name, columns, _key in SPARSE:
        _rebuild(name, columns, "")
