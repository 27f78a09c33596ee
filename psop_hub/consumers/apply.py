"""Applying one stored message exactly once: inbox row, state change and journey in ONE transaction.

The unique `(consumer, hub_id)` key of the inbox decides whether a message was applied already,
not a read-then-write: a redelivered message inserts nothing and changes nothing. A broken rule
rolls back to a savepoint (nothing half-applied) and the message is recorded as `rejected` in the
same transaction; a transient error rolls back everything, and the message is retried.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from psop_hub.consumers.handlers import HANDLERS
from psop_hub.consumers.outcome import Context, Outcome
from psop_hub.hub import store
from psop_hub.hub.database import unavailable_on_outage
from psop_hub.hub.errors import PermanentError, RuleBroken
from psop_hub.mappings.canonical import parse_payload

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result:
    """What happened to one delivery of a message to the worker."""

    status: str
    detail: str
    duplicate: bool = False


def apply(engine: Engine, hub_id: uuid.UUID, attempt: int) -> Result:
    """Apply a stored message once; a second call for the same hub_id changes nothing."""
    try:
        with unavailable_on_outage(), engine.begin() as conn:
            row = store.claim_and_load(conn, hub_id)
            if row is None:
                return _not_claimed(engine, hub_id)
            ctx = Context(hub_id=hub_id, sender=row.sender, type=row.type, message_id=row.message_id)
            outcome = _handle(conn, ctx, row.payload)
            store.finish(conn, hub_id, outcome.status, outcome.detail, attempt)
        return Result(outcome.status, outcome.detail)
    except PermanentError as exc:
        # The transaction above rolled back whole (inbox row included): nothing is half-applied.
        return _reject(engine, hub_id, attempt, exc)


def _reject(engine: Engine, hub_id: uuid.UUID, attempt: int, exc: PermanentError) -> Result:
    rule = f"{exc.rule}: " if isinstance(exc, RuleBroken) else ""
    detail = f"{rule}{exc.reason}"
    errors = [e.as_dict() for e in exc.errors] or [{"field": "payload", "message": exc.reason}]
    with unavailable_on_outage(), engine.begin() as conn:
        if not store.claim(conn, hub_id, "rejected"):
            return _not_claimed(engine, hub_id)
        store.finish(conn, hub_id, "rejected", detail, attempt, errors)
    return Result("rejected", detail)


def _not_claimed(engine: Engine, hub_id: uuid.UUID) -> Result:
    with unavailable_on_outage(), engine.connect() as conn:
        row = store.load(conn, hub_id)
    if row is None:
        # Published ids come from committed rows, so this is an operator deleting data.
        log.error("message %s is not in the store; nothing to apply", hub_id)
        return Result("missing", "not in the store", duplicate=True)
    return Result(row.status, "applied already", duplicate=True)


def _handle(conn: object, ctx: Context, payload: dict[str, object]) -> Outcome:
    handler = HANDLERS.get(ctx.type)
    if handler is None:
        raise RuleBroken("supported_type", f"the hub has no consumer for {ctx.type} yet")
    return handler(conn, ctx, parse_payload(ctx.type, payload))  # type: ignore[arg-type]


def record_retry(engine: Engine, hub_id: uuid.UUID, attempt: int, reason: str, delay_hint: str) -> None:
    """Note a transient failure that will be retried (status `retrying`, a journey step)."""
    with unavailable_on_outage(), engine.begin() as conn:
        store.set_status(
            conn,
            hub_id,
            "retrying",
            errors=[{"field": "", "message": reason}],
            attempts=attempt,
            unless_final=True,  # a redelivered copy may have been applied meanwhile
        )
        store.add_steps(
            conn, hub_id, [("attempt", f"attempt {attempt}"), ("retrying", f"{reason}; {delay_hint}")]
        )


def record_failure(engine: Engine, hub_id: uuid.UUID, attempt: int, reason: str) -> None:
    """Give up on a message after its last attempt: status `failed`, kept for an admin to replay."""
    store.fail(engine, hub_id, attempt, reason, f"gave up: {reason}")
