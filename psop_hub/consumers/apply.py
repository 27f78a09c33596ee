"""Applying stored messages exactly once: inbox row, state change and journey in ONE transaction.

The unique `(consumer, hub_id)` key of the inbox decides whether a message was applied already,
not a read-then-write: a redelivered message inserts nothing and changes nothing.

A batch (the hub_ids of one AMQP message) is applied in one transaction, so it costs one commit,
first all together behind one savepoint (the usual case: one statement enters the whole batch
in the inbox and loads it, each message changes the state, one statement writes every status and
journey step). If any message breaks a rule or must wait, the batch
goes back to that savepoint and is applied again one savepoint per message: a broken rule rolls
its message back to its savepoint (nothing half-applied) and records it as `rejected`; a message
that must wait (or hits an unexpected error) is rolled back to its savepoint and handed back to
the caller, which retries it alone.
Messages are taken in the order of the voucher or order they lock, so that two batches never
wait for each other's locks in a cycle. A database outage fails the whole batch: nothing of it
is committed, and the AMQP message is retried.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection, Engine

from psop_hub.consumers.handlers import BATCH_HANDLERS, HANDLERS
from psop_hub.consumers.outcome import Context, Outcome
from psop_hub.hub import store
from psop_hub.hub.database import bad_data, is_unavailable, raw, unavailable_on_outage
from psop_hub.hub.errors import PermanentError, RuleBroken
from psop_hub.mappings.canonical import parse_payload

log = logging.getLogger(__name__)

# The voucher or order each message will lock: from the payload, or for a correction or a
# cancellation from the delivery it names. Vouchers before orders, then by organiser and number,
# and the messages of one voucher or order in the order they were received.
LOCK_ORDER = """
SELECT m.hub_id FROM messages m
LEFT JOIN deliveries d
       ON m.type IN ('delivery.corrected', 'delivery.cancelled')
      AND d.provider = m.provider AND d.event_id = m.payload->>'event_id'
WHERE m.hub_id = ANY(%s)
ORDER BY CASE WHEN coalesce(m.payload->>'voucher_number', d.voucher_number) IS NOT NULL THEN 0 ELSE 1 END,
         coalesce(m.payload->>'organiser', d.organiser, ''),
         coalesce(m.payload->>'voucher_number', d.voucher_number,
                  m.payload->>'order_number', d.order_number, ''),
         m.received_at, m.hub_id
"""


# Messages that others may wait for: once one is applied, what waits for its voucher or order
# (organiser, number) is sent on at once, in the order received (`waiting_for`), instead of each
# at the end of its own pause, where a later delivery could overtake an earlier one.
# A delivery releases the deliveries that wait behind it (see deliveries.EARLIER_WAITING).
RELEASING = frozenset({"voucher.granted", "voucher.assigned", "order.placed", "delivery.reported"})

WAITING_FOR = """
SELECT m.hub_id, m.attempts FROM unnest(%s::text[], %s::text[]) AS k(organiser, reference)
JOIN messages m ON m.status = 'retrying' AND m.organiser = k.organiser AND m.reference = k.reference
 AND m.errors @> '[{"waiting": true}]'
ORDER BY m.organiser, m.reference, m.received_at, m.hub_id
LIMIT %s
"""


@dataclass(frozen=True)
class Result:
    """What happened to one delivery of a message to the worker."""

    status: str
    detail: str
    duplicate: bool = False
    # (organiser, voucher or order number) that messages waiting for it may now go on with
    releases: tuple[str, str] | None = None


def apply(engine: Engine, hub_id: uuid.UUID, attempt: int) -> Result:
    """Apply one stored message once; raises what it must wait for (a `TransientError`)."""
    outcome = apply_batch(engine, [hub_id], attempt)[hub_id]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


class Applied(dict[uuid.UUID, Result | Exception]):
    """Each message's Result, or the exception that stopped it for now; and `waiting`: the
    messages (hub_id, attempts so far) that wait for a voucher or order this batch applied, in
    the order received (read in the batch's transaction, to be sent on after its commit)."""

    waiting: list[tuple[uuid.UUID, int]]


def apply_batch(
    engine: Engine, hub_ids: Sequence[uuid.UUID], attempt: int | Mapping[uuid.UUID, int]
) -> Applied:
    """Apply several stored messages in one transaction; each gets a Result, or the exception
    that stopped it for now (retry it). A second call for the same hub_id changes nothing.
    `attempt` is the batch's attempt number, or each message's (messages released together)."""
    attempts = attempt if isinstance(attempt, Mapping) else dict.fromkeys(hub_ids, attempt)
    results: dict[uuid.UUID, Result | Exception] = {}
    waiting: list[tuple[uuid.UUID, int]] = []
    with unavailable_on_outage(), engine.begin() as conn:
        cur = raw(conn)
        ordered = (
            [r.hub_id for r in cur.execute(LOCK_ORDER, (list(hub_ids),))] if len(hub_ids) > 1 else hub_ids
        )
        # The usual case first: every message of the batch applies (`_all_together`), behind one
        # savepoint; if any message breaks a rule or must wait, the batch goes back to it and is
        # applied message by message (`_one_by_one`).
        cur.execute("SAVEPOINT batch")
        try:
            results = _all_together(conn, ordered, attempts)
        except Exception as exc:
            if is_unavailable(exc):
                raise  # the connection is gone: the whole batch is retried
            cur.execute("ROLLBACK TO SAVEPOINT batch")
            results = _one_by_one(conn, ordered, attempts)
        released = [r.releases for r in results.values() if isinstance(r, Result) and r.releases]
        if released:
            # Read in this transaction (no round trips of its own); sent on after the commit.
            waiting = _waiting_for(conn, released)
    applied = Applied(results)
    for hub_id in hub_ids:  # ids that are not in the store at all
        if hub_id not in applied:
            log.error("message %s is not in the store; nothing to apply", hub_id)
            applied[hub_id] = Result("missing", "not in the store", duplicate=True)
    # Those of this very batch that must wait again are on their own way already.
    applied.waiting = [(h, n) for h, n in waiting if h not in applied]
    return applied


def _all_together(
    conn: Connection, ordered: Sequence[uuid.UUID], attempts: Mapping[uuid.UUID, int]
) -> dict[uuid.UUID, Result | Exception]:
    """The usual case: every message of the batch applies. One statement enters them all in the
    inbox and loads them, each changes the state (a batch of one type that has a set-based
    handler, as the new deliveries of a file, all together: `BATCH_HANDLERS`), one statement
    records every outcome."""
    rows = store.enter_inbox_and_load_many(conn, ordered)
    results: dict[uuid.UUID, Result | Exception] = {}
    finished: list[tuple[uuid.UUID, str, str, int]] = []
    fresh = [rows[hub_id] for hub_id in ordered if hub_id in rows]
    types = {row.type for row in fresh}
    batch = BATCH_HANDLERS.get(fresh[0].type) if len(fresh) > 1 and len(types) == 1 else None
    outcomes: dict[uuid.UUID, Outcome] = {}
    if batch is not None:
        items = [(_context(row), parse_payload(row.type, row.payload)) for row in fresh]
        outcomes = dict(zip([row.hub_id for row in fresh], batch(conn, items), strict=True))
    for hub_id in ordered:
        row = rows.get(hub_id)
        if row is None:
            results[hub_id] = _done_before(conn, hub_id)
            continue
        outcome = outcomes.get(hub_id)
        result = _change_state(conn, row) if outcome is None else _result(row, outcome)
        finished.append((hub_id, result.status, result.detail, attempts[hub_id]))
        results[hub_id] = result
    store.finish_many(conn, finished)
    return results


def _one_by_one(
    conn: Connection, ordered: Sequence[uuid.UUID], attempts: Mapping[uuid.UUID, int]
) -> dict[uuid.UUID, Result | Exception]:
    """Apply each message in a savepoint of its own: a broken rule rolls back only its message
    (recorded `rejected`); one that must wait is handed back to be retried alone."""
    cur = raw(conn)
    results: dict[uuid.UUID, Result | Exception] = {}
    for hub_id in ordered:
        n = attempts[hub_id]
        cur.execute("SAVEPOINT one")
        try:
            results[hub_id] = _apply_one(conn, hub_id, n)
        except PermanentError as exc:
            # The rollback releases the voucher or order lock taken after the savepoint, and
            # another worker may apply the next message before the rejection is written: the
            # rejection keeps the time it was decided, so the journey stays causal.
            now = cur.execute("SELECT clock_timestamp() AS at").fetchone()
            decided_at = now.at if now is not None else None
            cur.execute("ROLLBACK TO SAVEPOINT one")
            results[hub_id] = _reject(conn, hub_id, n, exc, decided_at)
        except Exception as exc:
            if is_unavailable(exc):
                raise  # the connection is gone: the whole batch is retried
            cur.execute("ROLLBACK TO SAVEPOINT one")
            rejected = bad_data(exc)  # the same values would fail every time: no retry
            results[hub_id] = exc if rejected is None else _reject(conn, hub_id, n, rejected)
        cur.execute("RELEASE SAVEPOINT one")
    return results


def _apply_one(conn: Connection, hub_id: uuid.UUID, attempt: int) -> Result:
    row = store.enter_inbox_and_load(conn, hub_id)
    if row is None:
        return _done_before(conn, hub_id)
    result = _change_state(conn, row)
    store.finish(conn, hub_id, result.status, result.detail, attempt)
    return result


def _change_state(conn: Connection, row: Any) -> Result:
    """Apply one message just entered in the inbox (`row`: it and its sender) to the state."""
    return _result(row, _handle(conn, _context(row), row.payload))


def _context(row: Any) -> Context:
    return Context(
        hub_id=row.hub_id,
        sender=row.sender,
        type=row.type,
        message_id=row.message_id,
        sender_role=row.sender_role,
        sender_organisers=tuple(row.sender_organisers or ()),
    )


def _result(row: Any, outcome: Outcome) -> Result:
    releases = None
    if row.type in RELEASING and outcome.status == "applied":
        number = row.payload.get("voucher_number") or row.payload.get("order_number")
        releases = (row.payload["organiser"], number)
    return Result(outcome.status, outcome.detail, releases=releases)


def _reject(
    conn: Connection, hub_id: uuid.UUID, attempt: int, exc: PermanentError, decided_at: datetime | None = None
) -> Result:
    rule = exc.rule if isinstance(exc, RuleBroken) else None
    detail = f"{rule}: {exc.reason}" if rule else exc.reason
    errors = [e.as_dict() for e in exc.errors] or [{"field": "payload", "message": exc.reason}]
    if rule:
        # Each error names the rule too, so that a file's result (and GET) can say which.
        errors = [{**e, "rule": rule} for e in errors]
    if not store.enter_inbox(conn, hub_id, "rejected"):
        return _done_before(conn, hub_id)
    store.finish(conn, hub_id, "rejected", detail, attempt, errors, at=decided_at)
    return Result("rejected", detail)


def _done_before(conn: Connection, hub_id: uuid.UUID) -> Result:
    row = store.load(conn, hub_id)
    if row is None:
        # Published ids come from committed rows, so this is an operator deleting data.
        log.error("message %s is not in the store; nothing to apply", hub_id)
        return Result("missing", "not in the store", duplicate=True)
    return Result(row.status, "applied already", duplicate=True)


def _handle(conn: Connection, ctx: Context, payload: dict[str, Any]) -> Outcome:
    handler = HANDLERS.get(ctx.type)
    if handler is None:
        raise RuleBroken("supported_type", f"the hub has no consumer for {ctx.type} yet")
    return handler(conn, ctx, parse_payload(ctx.type, payload))


def waiting_for(
    engine: Engine, keys: Iterable[tuple[str, str]], limit: int = 1000
) -> list[tuple[uuid.UUID, int]]:
    """The messages waiting (`retrying`) for these vouchers or orders, each key's in the order
    they were received, with the attempts each has had."""
    with unavailable_on_outage(), engine.connect() as conn:
        return _waiting_for(conn, keys, limit)


def _waiting_for(
    conn: Connection, keys: Iterable[tuple[str, str]], limit: int = 1000
) -> list[tuple[uuid.UUID, int]]:
    unique = sorted(set(keys))
    if not unique:
        return []
    rows = raw(conn).execute(WAITING_FOR, ([k[0] for k in unique], [k[1] for k in unique], limit))
    return [(r.hub_id, r.attempts) for r in rows]


def record_retry(
    engine: Engine, hub_id: uuid.UUID, attempt: int, reason: str, delay_hint: str, waiting: bool = False
) -> None:
    """Note a transient failure that will be retried (status `retrying`, a journey step).
    `waiting`: it waits for a message not applied yet (`Waiting`), not after an error; such a
    message is sent on when that arrives (`waiting_for`), and holds later deliveries behind it."""
    error: dict[str, Any] = {"field": "", "message": reason}
    if waiting:
        error["waiting"] = True
    with unavailable_on_outage(), engine.begin() as conn:
        store.set_status(
            conn,
            hub_id,
            "retrying",
            errors=[error],
            attempts=attempt,
            unless_final=True,  # a redelivered copy may have been applied meanwhile
        )
        store.add_steps(
            conn, hub_id, [("attempt", f"attempt {attempt}"), ("retrying", f"{reason}; {delay_hint}")]
        )


def record_failure(engine: Engine, hub_id: uuid.UUID, attempt: int, reason: str) -> None:
    """Give up on a message after its last attempt: status `failed`, kept for an admin to replay."""
    store.fail(engine, hub_id, attempt, reason, f"gave up: {reason}")
