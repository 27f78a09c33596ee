"""The message store: every accepted message, its status and its journey, in PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection, Engine

from psop_hub.hub.database import unavailable_on_outage
from psop_hub.hub.envelope import Accepted, Incoming
from psop_hub.hub.errors import ConflictError
from psop_hub.hub.tables import inbox, journey, messages

STATUSES = ("accepted", "applied", "retrying", "rejected", "superseded", "failed", "replaced")
FINAL_STATUSES = frozenset({"applied", "rejected", "superseded", "failed", "replaced"})
# The consumer that keeps the service state; its inbox rows decide what was applied.
STATE_CONSUMER = "state"


def accept(engine: Engine, incoming: Incoming) -> Accepted:
    """Store a message durably (committed before this returns), or find its first copy.

    A duplicate (same sender, message_id and payload) returns the first hub_id; the same
    message_id with another payload raises `ConflictError`.
    """
    fingerprint = incoming.payload_sha256()
    with unavailable_on_outage(), engine.begin() as conn:
        stmt = (
            pg_insert(messages)
            .values(
                hub_id=incoming.hub_id,
                sender=incoming.sender,
                message_id=incoming.message_id,
                type=incoming.type,
                sent_at=incoming.sent_at,
                correlation_id=incoming.correlation_id,
                payload=incoming.payload,
                payload_sha256=fingerprint,
                organiser=incoming.organiser,
                provider=incoming.provider,
                reference=incoming.reference,
                channel=incoming.channel,
                status="accepted",
                replay_of=incoming.replay_of,
            )
            .on_conflict_do_nothing(constraint="uq_messages_sender_message_id")
            .returning(messages.c.hub_id)
        )
        if conn.execute(stmt).scalar_one_or_none() is None:
            first = conn.execute(
                select(messages.c.hub_id, messages.c.payload_sha256).where(
                    messages.c.sender == incoming.sender, messages.c.message_id == incoming.message_id
                )
            ).one()
            if first.payload_sha256 != fingerprint:
                raise ConflictError(
                    f"message_id {incoming.message_id!r} was already used with a different payload",
                    str(first.hub_id),
                )
            return Accepted(hub_id=first.hub_id, duplicate=True)
        conn.execute(
            insert(journey),
            [
                {
                    "hub_id": incoming.hub_id,
                    "step": "received",
                    "detail": f"{incoming.channel} from {incoming.sender}",
                },
                {"hub_id": incoming.hub_id, "step": "validated", "detail": incoming.type},
            ],
        )
    return Accepted(hub_id=incoming.hub_id, duplicate=False)


def mark_published(conn: Connection, hub_ids: Sequence[uuid.UUID], detail: str = "published") -> None:
    """Record that RabbitMQ confirmed these messages (the relay stops sending them)."""
    if not hub_ids:
        return
    conn.execute(
        update(messages)
        .where(messages.c.hub_id.in_(hub_ids), messages.c.published_at.is_(None))
        .values(published_at=func.now())
    )
    conn.execute(insert(journey), [{"hub_id": h, "step": "queued", "detail": detail} for h in hub_ids])


def claim_unpublished(conn: Connection, older_than_s: float, limit: int) -> list[uuid.UUID]:
    """Lock messages that were stored but never confirmed by RabbitMQ (other relays skip them)."""
    rows = conn.execute(
        select(messages.c.hub_id)
        .where(
            messages.c.published_at.is_(None),
            messages.c.received_at < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, older_than_s),
        )
        .order_by(messages.c.received_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [r.hub_id for r in rows]


def claim(conn: Connection, hub_id: uuid.UUID, outcome: str, consumer: str = STATE_CONSUMER) -> bool:
    """Insert the inbox row; False means the message was dealt with already (the unique key decides)."""
    claimed = conn.execute(
        pg_insert(inbox)
        .values(consumer=consumer, hub_id=hub_id, outcome=outcome)
        .on_conflict_do_nothing(constraint="pk_inbox")
        .returning(inbox.c.hub_id)
    ).scalar_one_or_none()
    return claimed is not None


def set_outcome(conn: Connection, hub_id: uuid.UUID, outcome: str, consumer: str = STATE_CONSUMER) -> None:
    """Correct the outcome on a claimed inbox row (rejected or superseded instead of applied)."""
    conn.execute(
        update(inbox).where(inbox.c.consumer == consumer, inbox.c.hub_id == hub_id).values(outcome=outcome)
    )


def fail(engine: Engine, hub_id: uuid.UUID, attempts: int | None, reason: str, detail: str) -> bool:
    """Give up on a message: status `failed`, kept for an admin to replay. False if it was done already."""
    with unavailable_on_outage(), engine.begin() as conn:
        if not claim(conn, hub_id, "failed"):
            return False
        set_status(conn, hub_id, "failed", errors=[{"field": "", "message": reason}], attempts=attempts)
        steps = [("attempt", f"attempt {attempts}")] if attempts else []
        add_steps(conn, hub_id, [*steps, ("failed", detail)])
    return True


def add_steps(conn: Connection, hub_id: uuid.UUID, steps: Iterable[tuple[str, str]]) -> None:
    """Append journey steps to one message."""
    rows = [{"hub_id": hub_id, "step": step, "detail": detail} for step, detail in steps]
    if rows:
        conn.execute(insert(journey), rows)


def set_status(
    conn: Connection,
    hub_id: uuid.UUID,
    status: str,
    *,
    errors: list[dict[str, str]] | None = None,
    attempts: int | None = None,
    unless_final: bool = False,
) -> None:
    """Set a message's status (and errors/attempts where given); `unless_final` keeps a final one."""
    values: dict[str, Any] = {"status": status, "updated_at": func.now()}
    if errors is not None:
        values["errors"] = errors
    if attempts is not None:
        values["attempts"] = attempts
    stmt = update(messages).where(messages.c.hub_id == hub_id)
    if unless_final:
        stmt = stmt.where(messages.c.status.not_in(FINAL_STATUSES))
    conn.execute(stmt.values(**values))


def load(conn: Connection, hub_id: uuid.UUID) -> Any:
    """One message row, or None."""
    return conn.execute(select(messages).where(messages.c.hub_id == hub_id)).one_or_none()


def describe(engine: Engine, hub_id: uuid.UUID) -> dict[str, Any] | None:
    """A message as the status API shows it, with its journey; None if there is no such message."""
    with unavailable_on_outage(), engine.connect() as conn:
        row = load(conn, hub_id)
        if row is None:
            return None
        steps = conn.execute(
            select(journey.c.at, journey.c.step, journey.c.detail)
            .where(journey.c.hub_id == hub_id)
            .order_by(journey.c.id)
        ).all()
    return {
        "hub_id": str(row.hub_id),
        "message_id": row.message_id,
        "type": row.type,
        "sender": row.sender,
        "status": row.status,
        "correlation_id": row.correlation_id,
        "received_at": _iso(row.received_at),
        "updated_at": _iso(row.updated_at),
        "attempts": row.attempts,
        "errors": row.errors,
        "journey": [{"at": _iso(s.at), "step": s.step, "detail": s.detail} for s in steps],
    }


def _iso(value: datetime) -> str:
    return value.isoformat()
