"""Replaying failed and rejected messages, one at a time: as they are, or as an edited copy.

A plain replay gives the *same* message (its hub_id, so the sender's view of its message_id
follows it) another run: in one transaction, guarded by the status it must still have, its
status goes back to `accepted`, its inbox row (which recorded `failed` or `rejected`) is removed,
an outbox row and a `replayed` journey step (by whom, why) are written, and the audit row. Only
then is it published; if that fails, the relay sends it. The inbox keeps it exactly-once: a
replayed message is applied at most once, and a replay of one that is no longer failed or
rejected (applied since, replayed by someone else, still retrying) changes nothing and says so.

An edited replay stores a *new* message (a new hub_id and message_id, `replay_of` the original,
the original's sender and type, validated like any message by the caller, see
`adapters.replays.replay_edited`) and marks the original `replaced`, linked both ways, in one
transaction; the original keeps its payload. The audit row has the payload before and after.

Functions (plain, on an Engine; results are dataclasses with `to_json()`):

- `replay_message(engine, actor, hub_id, reason="", publisher=None) -> ReplayResult`
- `original_of(engine, hub_id) -> Original` (what an edited copy is built from; `NotFound`)
- `replay_copy(engine, actor, original, copy, reason="", publisher=None) -> ReplayResult`
- `requeue(conn, pairs, detail) -> list[hub_id]`: the guarded transition itself, for bulk jobs.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from psop_hub.hub import audit, store
from psop_hub.hub.database import raw, unavailable_on_outage
from psop_hub.hub.errors import ConflictError, NotFound
from psop_hub.hub.publishing import Publisher
from psop_hub.hub.senders import Sender
from psop_hub.hub.submission import Submission
from psop_hub.hub.tables import clients, messages

log = logging.getLogger(__name__)

REPLAYABLE = ("failed", "rejected")

# The guarded transition: only messages whose status is still the one given with them move.
REQUEUE = """
WITH wanted AS (
    SELECT * FROM unnest(%(ids)s::uuid[], %(statuses)s::text[]) AS w(hub_id, status)
), m AS (
    UPDATE messages SET status = 'accepted', updated_at = clock_timestamp()
    FROM wanted WHERE messages.hub_id = wanted.hub_id AND messages.status = wanted.status
    RETURNING messages.hub_id
), gone AS (
    DELETE FROM inbox WHERE consumer = %(consumer)s AND hub_id IN (SELECT hub_id FROM m)
), pending AS (
    INSERT INTO outbox (hub_id) SELECT hub_id FROM m ON CONFLICT ON CONSTRAINT pk_outbox DO NOTHING
), steps AS (
    INSERT INTO journey (hub_id, step, detail) SELECT hub_id, 'replayed', %(detail)s FROM m
)
SELECT hub_id FROM m
"""


def requeue(conn: Connection, pairs: Sequence[tuple[uuid.UUID, str]], detail: str) -> list[uuid.UUID]:
    """Move each (hub_id, status) whose message still has that status back to `accepted`, ready
    to be applied again; returns the hub_ids moved (publish them after the commit)."""
    if not pairs:
        return []
    rows = raw(conn).execute(
        REQUEUE,
        {
            "ids": [h for h, _ in pairs],
            "statuses": [s for _, s in pairs],
            "consumer": store.STATE_CONSUMER,
            "detail": detail,
        },
    )
    return [r.hub_id for r in rows]


def skip_reason(status: str) -> str:
    """Why a message with this status is not replayed."""
    if status == "applied":
        return "already applied: nothing to replay"
    if status == "replaced":
        return "replaced by an edited copy: replay the copy instead"
    if status == "superseded":
        return "superseded by a newer version: nothing to replay"
    return f"not failed or rejected (it is {status}): the hub is still working on it"


@dataclass(frozen=True)
class ReplayResult:
    """What a replay did: `queued` (with the copy's hub_id for an edit) or `skipped`, and why."""

    hub_id: uuid.UUID
    outcome: str
    status: str
    detail: str
    copy_hub_id: uuid.UUID | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON form the API answers."""
        out: dict[str, Any] = {
            "hub_id": str(self.hub_id),
            "outcome": self.outcome,
            "status": self.status,
            "detail": self.detail,
        }
        if self.copy_hub_id is not None:
            out["copy_hub_id"] = str(self.copy_hub_id)
        return out


def replayed_detail(actor: str, reason: str, job_id: uuid.UUID | None = None) -> str:
    """The `replayed` journey step's detail: by whom, in which job, why."""
    job = f" (bulk replay {job_id})" if job_id else ""
    return f"by {actor}{job}: {reason or 'no reason given'}"


def publish_now(publisher: Publisher | None, hub_ids: Sequence[uuid.UUID]) -> None:
    """Publish requeued messages if a publisher is at hand; the relay sends them otherwise."""
    if publisher is not None and hub_ids:
        publisher.try_publish(list(hub_ids))


def replay_message(
    engine: Engine,
    actor: str,
    hub_id: uuid.UUID,
    reason: str = "",
    publisher: Publisher | None = None,
) -> ReplayResult:
    """Replay one failed or rejected message as it is; a message in any other state is left
    alone (`skipped`, with why). `NotFound` if there is no such message. Audited either way."""
    with unavailable_on_outage(), engine.begin() as conn:
        status = conn.execute(
            select(messages.c.status).where(messages.c.hub_id == hub_id).with_for_update()
        ).scalar_one_or_none()
        if status is None:
            raise NotFound(f"no message {hub_id}")
        moved = status in REPLAYABLE and bool(
            requeue(conn, [(hub_id, status)], replayed_detail(actor, reason))
        )
        result = (
            ReplayResult(hub_id, "queued", "accepted", f"{status} message queued again")
            if moved
            else ReplayResult(hub_id, "skipped", status, skip_reason(status))
        )
        audit.record(
            conn,
            actor,
            audit.MESSAGE_REPLAY,
            reason=reason,
            hub_ids=[hub_id],
            detail={"outcome": result.outcome, "status_before": status, "detail": result.detail},
        )
    if moved:
        publish_now(publisher, [hub_id])
    return result


@dataclass(frozen=True)
class Original:
    """The message an edited copy replaces, and its sender as it is registered (even if revoked)."""

    hub_id: uuid.UUID
    message_id: str
    type: str
    sent_at: datetime
    correlation_id: str | None
    payload: dict[str, Any]
    status: str
    sender: Sender


def original_of(engine: Engine, hub_id: uuid.UUID) -> Original:
    """The message to edit, with its sender; `NotFound` if there is no such message."""
    with unavailable_on_outage(), engine.connect() as conn:
        row = conn.execute(
            select(
                messages.c.hub_id,
                messages.c.message_id,
                messages.c.type,
                messages.c.sent_at,
                messages.c.correlation_id,
                messages.c.payload,
                messages.c.status,
                messages.c.sender,
                clients.c.role,
                clients.c.organisers,
                clients.c.provider,
            )
            .select_from(messages.outerjoin(clients, clients.c.name == messages.c.sender))
            .where(messages.c.hub_id == hub_id)
        ).one_or_none()
    if row is None:
        raise NotFound(f"no message {hub_id}")
    return Original(
        hub_id=row.hub_id,
        message_id=row.message_id,
        type=row.type,
        sent_at=row.sent_at,
        correlation_id=row.correlation_id,
        payload=dict(row.payload),
        status=row.status,
        # A sender removed from the register keeps no scope: the caller's checks then refuse.
        sender=Sender(row.sender, row.role or "unknown", tuple(row.organisers or ()), row.provider),
    )


def copy_message_id(original_message_id: str) -> str:
    """A new message_id for an edited copy: the original's, marked, unique (at most 100 chars)."""
    return f"{original_message_id[:80]}~edit-{uuid.uuid4().hex[:12]}"


def replay_copy(
    engine: Engine,
    actor: str,
    original: Original,
    copy: Submission,
    reason: str = "",
    publisher: Publisher | None = None,
) -> ReplayResult:
    """Store a validated edited copy of a failed or rejected message and mark the original
    `replaced`, in one transaction; `ConflictError` if the original is no longer failed or
    rejected (nothing is stored then). Audited with the payload before and after."""
    copy = replace(copy, replay_of=original.hub_id)
    with unavailable_on_outage(), engine.begin() as conn:
        status = conn.execute(
            select(messages.c.status).where(messages.c.hub_id == original.hub_id).with_for_update()
        ).scalar_one_or_none()
        if status is None:
            raise NotFound(f"no message {original.hub_id}")
        if status not in REPLAYABLE:
            raise ConflictError(
                f"message {original.hub_id} is {status}: only a failed or rejected message can be "
                f"replaced by an edited copy ({skip_reason(status)})",
                str(original.hub_id),
            )
        stored = store.accept_in(conn, copy)
        if isinstance(stored, ConflictError):
            raise stored
        why = reason or "no reason given"
        store.set_status(conn, original.hub_id, "replaced")
        raw(conn).execute(
            "UPDATE inbox SET outcome = 'replaced' WHERE consumer = %s AND hub_id = %s",
            (store.STATE_CONSUMER, original.hub_id),
        )
        store.add_steps(
            conn, original.hub_id, [("replaced", f"by {actor}: {why}; edited copy {copy.hub_id}")]
        )
        store.add_steps(
            conn, copy.hub_id, [("edited", f"edited copy of {original.hub_id} by {actor}: {why}")]
        )
        audit.record(
            conn,
            actor,
            audit.MESSAGE_REPLAY_EDITED,
            reason=reason,
            hub_ids=[original.hub_id, copy.hub_id],
            detail={
                "status_before": status,
                "copy": str(copy.hub_id),
                "before": original.payload,
                "after": copy.payload,
            },
        )
    publish_now(publisher, [copy.hub_id])
    return ReplayResult(
        original.hub_id, "queued", "replaced", f"edited copy {copy.hub_id} queued", copy_hub_id=copy.hub_id
    )
