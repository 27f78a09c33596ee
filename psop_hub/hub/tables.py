"""The PostgreSQL tables, as SQLAlchemy Core metadata. Alembic migrations create them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Sequence,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

# SQLAlchemy's recommended convention, so that no constraint is named by PostgreSQL's defaults
# (`clients_pkey`, `settlements_reference_key`, `messages_replay_of_fkey`) and raw SQL that names
# one (`ON CONFLICT ON CONSTRAINT pk_inbox`) can rely on it. `uq` joins every column, which gives
# the names 0001 chose by hand (`uq_messages_sender_message_id`). Explicit names stay as they are
# (the indexes and `uq_settlements_period`); migration 0006 renamed what PostgreSQL had named.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

MONEY = Numeric(14, 2)
QUANTITY = Numeric(14, 2)

clients = Table(
    "clients",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("role", String(20), nullable=False),
    # The organisers a `system` client acts for (one or more; empty for the other roles).
    Column("organisers", ARRAY(String(9)), nullable=False, server_default=text("'{}'")),
    Column("provider", String(9)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("disabled_at", DateTime(timezone=True)),
)

# A client's secrets (migration 0011): usually one; two while a rotation's grace period runs.
# A secret works until `expires_at` (its lifetime, or the end of the grace period once a rotation
# replaced it) while its client is not disabled.
client_secrets = Table(
    "client_secrets",
    metadata,
    # SHA-256 of a 256-bit random secret: a slow password hash adds nothing for such entropy.
    Column("secret_sha256", String(64), primary_key=True),
    Column("client", String(100), ForeignKey("clients.name", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    # When a rotation gave it an end (None: the client's current secret).
    Column("replaced_at", DateTime(timezone=True)),
    Index("ix_client_secrets_client", "client"),
)

messages = Table(
    "messages",
    metadata,
    Column("hub_id", UUID(as_uuid=True), primary_key=True),
    Column("sender", String(100), nullable=False),
    Column("message_id", String(100), nullable=False),
    Column("type", String(40), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=False),
    Column("correlation_id", String(100)),
    Column("payload", JSONB, nullable=False),
    Column("payload_sha256", String(64), nullable=False),
    # Search keys copied out of the payload (never the HETU).
    Column("organiser", String(9)),
    Column("provider", String(9)),
    Column("reference", String(100)),
    Column("channel", String(10), nullable=False),
    Column("status", String(12), nullable=False),
    Column("errors", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("replay_of", UUID(as_uuid=True), ForeignKey("messages.hub_id")),
    UniqueConstraint("sender", "message_id"),
    Index("ix_messages_status_received", "status", "received_at"),
    Index("ix_messages_received", "received_at"),
    Index("ix_messages_reference", "reference"),
    # The keys that most messages lack are indexed only where set (0014): each query asks for a
    # value (`=`), and a message without one adds nothing to the index.
    Index("ix_messages_correlation", "correlation_id", postgresql_where=text("correlation_id IS NOT NULL")),
    # The admin search (hub.search): each filter with the newest first, and `q`'s exact keys.
    Index("ix_messages_message_id", "message_id"),
    Index("ix_messages_type_received", "type", "received_at"),
    Index("ix_messages_sender_received", "sender", "received_at"),
    Index("ix_messages_organiser_received", "organiser", "received_at"),
    Index(
        "ix_messages_provider_received",
        "provider",
        "received_at",
        postgresql_where=text("provider IS NOT NULL"),
    ),
    Index(
        "ix_messages_event_id",
        text("(payload ->> 'event_id')"),
        postgresql_where=text("(payload ->> 'event_id') IS NOT NULL"),
    ),
    Index("ix_messages_replay_of", "replay_of", postgresql_where=text("replay_of IS NOT NULL")),
    # Messages waiting for a voucher or order (or an earlier delivery of it): found when it arrives.
    Index("ix_messages_waiting", "organiser", "reference", postgresql_where=text("status = 'retrying'")),
)

journey = Table(
    "journey",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    # No foreign key: only the store writes steps, for messages it holds, and the key check's
    # row lock on the message (five steps each) cost measurable CPU on the hot path.
    Column("hub_id", UUID(as_uuid=True), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()),
    Column("step", String(20), nullable=False),
    Column("detail", Text, nullable=False, server_default=""),
    Index("ix_journey_hub_id", "hub_id", "id"),
)

# Messages stored but not yet confirmed by RabbitMQ: a row is written with the message and
# deleted when the broker confirms it; the relay resends what stays.
outbox = Table(
    "outbox",
    metadata,
    Column("hub_id", UUID(as_uuid=True), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_outbox_created", "created_at"),
)

inbox = Table(
    "inbox",
    metadata,
    Column("consumer", String(40), nullable=False),
    Column("hub_id", UUID(as_uuid=True), nullable=False),
    Column("outcome", String(12), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("consumer", "hub_id"),
)

vouchers = Table(
    "vouchers",
    metadata,
    Column("organiser", String(9), nullable=False),
    Column("voucher_number", String(100), nullable=False),
    Column("status", String(12), nullable=False),
    Column("version", Integer, nullable=False),
    Column("decision_date", Date, nullable=False),
    Column("client_hetu", String(11), nullable=False),
    Column("home_municipality", String(3), nullable=False),
    Column("service_code", String(50), nullable=False),
    Column("service_name", String(200), nullable=False),
    Column("unit", String(10), nullable=False),
    Column("unit_value", MONEY, nullable=False),
    Column("quantity", QUANTITY, nullable=False),
    Column("quantity_used", QUANTITY, nullable=False, server_default=text("0")),
    Column("valid_from", Date, nullable=False),
    Column("valid_to", Date, nullable=False),
    Column("provider", String(9)),
    Column("provider_price", MONEY),
    Column("assigned_from", Date),
    # A revocation's effective_date: no delivery on or after it.
    Column("effective_end", Date),
    Column("revoked_reason", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("organiser", "voucher_number"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("provider", String(9), nullable=False),
    Column("event_id", String(100), nullable=False),
    Column("organiser", String(9), nullable=False),
    Column("voucher_number", String(100)),
    Column("order_number", String(100)),
    Column("service_date", Date, nullable=False),
    Column("unit", String(10), nullable=False),
    Column("quantity", QUANTITY, nullable=False),
    Column("price", MONEY, nullable=False),
    Column("unit_paid", MONEY, nullable=False),
    # What the organiser pays for it, on a voucher or an order alike (the API's `organiser_share`);
    # the column keeps its first name so that older workers of a rolling upgrade still write it.
    Column("voucher_share", MONEY, nullable=False),
    Column("client_share", MONEY, nullable=False),
    Column("status", String(12), nullable=False),
    Column("version", Integer, nullable=False),
    Column("hub_id", UUID(as_uuid=True), nullable=False),
    # Service and unit copied from the voucher or order, for settlement rows.
    Column("service_code", String(50)),
    Column("service_name", String(200)),
    # What settlements have paid for this delivery so far (sum of its settlement_items).
    Column("settled_quantity", QUANTITY, nullable=False, server_default=text("0")),
    Column("settled_amount", MONEY, nullable=False, server_default=text("0")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("provider", "event_id"),
    Index("ix_deliveries_voucher", "organiser", "voucher_number"),
    Index("ix_deliveries_order", "organiser", "order_number"),
    Index("ix_deliveries_settle", "organiser", "provider", "service_date"),
)

orders = Table(
    "orders",
    metadata,
    Column("organiser", String(9), nullable=False),
    Column("order_number", String(100), nullable=False),
    Column("status", String(12), nullable=False),
    Column("version", Integer, nullable=False),
    Column("provider", String(9), nullable=False),
    Column("client_hetu", String(11), nullable=False),
    Column("home_municipality", String(3), nullable=False),
    Column("service_code", String(50), nullable=False),
    Column("service_name", String(200), nullable=False),
    Column("unit", String(10), nullable=False),
    Column("unit_price", MONEY, nullable=False),
    Column("quantity", QUANTITY),
    Column("quantity_used", QUANTITY, nullable=False, server_default=text("0")),
    Column("start_date", Date, nullable=False),
    Column("end_date", Date),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("organiser", "order_number"),
)

settlements = Table(
    "settlements",
    metadata,
    Column("settlement_id", String(100), primary_key=True),
    Column("organiser", String(9), nullable=False),
    Column("provider", String(9), nullable=False),
    Column("month", Date, nullable=False),
    Column("reference", String(20), nullable=False, unique=True),
    Column("amount", MONEY, nullable=False),
    Column("status", String(12), nullable=False),
    Column("paid_date", Date),
    Column("paid_amount", MONEY),
    Column("payment_reference", String(40)),
    Column("payment_hub_id", UUID(as_uuid=True)),
    # When its Finvoice invoice was written to the organiser's outbox (NULL: not yet).
    Column("invoice_written_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("organiser", "provider", "month", name="uq_settlements_period"),
)

settlement_rows = Table(
    "settlement_rows",
    metadata,
    Column("settlement_id", String(100), ForeignKey("settlements.settlement_id"), nullable=False),
    Column("row_number", Integer, nullable=False),
    Column("kind", String(12), nullable=False),
    Column("service_code", String(50), nullable=False),
    Column("service_name", String(200), nullable=False),
    Column("unit", String(10), nullable=False),
    Column("unit_price", MONEY, nullable=False),
    Column("quantity", QUANTITY, nullable=False),
    Column("amount", MONEY, nullable=False),
    # The month its deliveries were delivered in: a later settlement's adjustment row names it
    # (NULL only for adjustment rows built before migration 0012).
    Column("service_month", Date),
    PrimaryKeyConstraint("settlement_id", "row_number"),
)

settlement_items = Table(
    "settlement_items",
    metadata,
    Column("settlement_id", String(100), ForeignKey("settlements.settlement_id"), nullable=False),
    Column("provider", String(9), nullable=False),
    Column("event_id", String(100), nullable=False),
    Column("quantity", QUANTITY, nullable=False),
    Column("amount", MONEY, nullable=False),
    PrimaryKeyConstraint("settlement_id", "provider", "event_id"),
    Index("ix_settlement_items_delivery", "provider", "event_id"),
)

# The providers each organiser has approved (hyväksytyt palveluntuottajat): the latest version of
# one approval per pair. service_codes NULL: every service; valid_to NULL: until further notice.
provider_approvals = Table(
    "provider_approvals",
    metadata,
    Column("organiser", String(9), nullable=False),
    Column("provider", String(9), nullable=False),
    Column("version", Integer, nullable=False),
    Column("service_codes", ARRAY(String(50))),
    Column("valid_from", Date, nullable=False),
    Column("valid_to", Date),
    Column("hub_id", UUID(as_uuid=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("organiser", "provider"),
)

# Organisers' and providers' invoicing details (Finvoice needs names, addresses and accounts).
parties = Table(
    "parties",
    metadata,
    Column("business_id", String(9), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("street", String(200), nullable=False, server_default=""),
    Column("postcode", String(10), nullable=False, server_default=""),
    Column("town", String(100), nullable=False, server_default=""),
    Column("iban", String(34)),
    Column("bic", String(11)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Files the file adapter has finished (their receipts written), by sender and content hash.
files = Table(
    "files",
    metadata,
    Column("sender", String(100), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("name", String(255), nullable=False),
    Column("records", Integer, nullable=False),
    Column("accepted", Integer, nullable=False),
    Column("rejected", Integer, nullable=False),
    Column("outcome", String(12), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("sender", "sha256", "name"),
)

# Every admin action and every admin read of client data (the client-data act 703/2023).
# Append-only: a trigger refuses UPDATE, DELETE and TRUNCATE, and the hub's role has no such grant
# (migration 0007). `hub_ids` names the messages acted on; a bulk replay names its job instead.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()),
    Column("actor", String(100), nullable=False),
    Column("action", String(40), nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Column("hub_ids", ARRAY(UUID(as_uuid=True)), nullable=False, server_default=text("'{}'::uuid[]")),
    Column("job_id", UUID(as_uuid=True)),
    Column("detail", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Index("ix_audit_log_at", "at"),
    Index("ix_audit_log_actor_at", "actor", "at"),
)

# Bulk replays: the job, frozen when it was confirmed (its items are the exact set counted,
# each with the status it had then), worked through by whichever process holds its lease.
replay_jobs = Table(
    "replay_jobs",
    metadata,
    Column("job_id", UUID(as_uuid=True), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("actor", String(100), nullable=False),
    Column("reason", Text, nullable=False),
    Column("filter", JSONB, nullable=False),
    # planned (a dry run's frozen set), queued, running, done
    Column("status", String(12), nullable=False),
    Column("matched", Integer, nullable=False, server_default=text("0")),
    Column("queued", Integer, nullable=False, server_default=text("0")),
    Column("skipped_applied", Integer, nullable=False, server_default=text("0")),
    Column("skipped_changed", Integer, nullable=False, server_default=text("0")),
    Column("runner", String(100)),
    Column("lease_until", DateTime(timezone=True)),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Index("ix_replay_jobs_status", "status", "created_at"),
)

replay_job_items = Table(
    "replay_job_items",
    metadata,
    Column("job_id", UUID(as_uuid=True), ForeignKey("replay_jobs.job_id"), nullable=False),
    Column("hub_id", UUID(as_uuid=True), nullable=False),
    Column("status_then", String(12), nullable=False),
    # NULL until done: queued, skipped_applied, skipped_changed
    Column("outcome", String(20)),
    Column("detail", Text),
    PrimaryKeyConstraint("job_id", "hub_id"),
)

# Admin page sign-ins (`hub/admin_sessions.py`): one row per session, shared by every API
# replica, so a sign-out or a revoked client ends the session at once everywhere. Only the
# SHA-256 of the cookie's token is stored: a copy of this table opens no session.
admin_sessions = Table(
    "admin_sessions",
    metadata,
    Column("token_sha256", String(64), primary_key=True),
    Column("client", String(100), ForeignKey("clients.name", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_seen_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_admin_sessions_last_seen", "last_seen_at"),
)

# The per-sender rate limit (hub/ratelimit.py): requests of one sender in one minute, counted by
# every API replica with one upsert; a sender's past minutes are deleted as its next one begins.
rate_windows = Table(
    "rate_windows",
    metadata,
    Column("sender", String(100), nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("requests", Integer, nullable=False),
    PrimaryKeyConstraint("sender", "window_start"),
)

# One row per receipt the file adapter wrote (`adapters/results.py`): the hub_ids of the file's
# accepted records and what the receipt listed, so that `NAME.result.json` can be written beside
# the receipt once every one of them is final. `written_at` is set when it is; the row lock taken
# to write it is the claim (of two file adapters, one writes it).
file_results = Table(
    "file_results",
    metadata,
    Column("sender", String(100), nullable=False),
    Column("receipt", String(300), nullable=False),  # the receipt's file name, NAME[.n].receipt.json
    # The data directory (HUB_DATA_DIR) the receipt is in: its result is written there, by an
    # adapter of that directory (every replica mounts it at the same path).
    Column("data_dir", String(1000), nullable=False),
    Column("file", String(255), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("records", Integer, nullable=False),
    Column("hub_ids", ARRAY(UUID(as_uuid=True)), nullable=False),
    # {"messages": [...], "rejected": [...]} as in the receipt
    Column("listing", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("written_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("sender", "receipt"),
    Index("ix_file_results_written", "data_dir", "written_at", "created_at"),
)

settlement_reference_seq = Sequence("settlement_reference_seq", metadata=metadata)


def without_hetu(table: Table) -> list[Column[Any]]:
    """Every column of `table` but the client's HETU: rows the handlers and views load (and that
    may end up in an error or a log) never carry it."""
    return [c for c in table.c if c.name != "client_hetu"]


def column_list(table: Table) -> str:
    """`without_hetu(table)` as the column list of a raw SELECT."""
    return ", ".join(c.name for c in without_hetu(table))
