"""The message store: every accepted message, its status and its journey, in PostgreSQL."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from psycopg.types.json import Jsonb
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection, Engine

from psop_hub.hub.database import raw, unavailable_on_outage
from psop_hub.hub.errors import ConflictError
from psop_hub.hub.privacy import mask_text
from psop_hub.hub.submission import Accepted, Submission
from psop_hub.hub.tables import journey, messages

log = logging.getLogger(__name__)

STATUSES = ("accepted", "applied", "retrying", "rejected", "superseded", "failed", "replaced")
FINAL_STATUSES = frozenset({"applied", "rejected", "superseded", "failed", "replaced"})
# The consumer that keeps the service state; its inbox rows decide what was applied.
STATE_CONSUMER = "state"


def _accept_row(submission: Submission, fingerprint: str, n: int) -> dict[str, Any]:
    """One message as a row of ACCEPT_MANY's JSON document (`n`: its place in the group)."""
    return {
        "n": n,
        "hub_id": str(submission.hub_id),
        "sender": submission.sender,
        "message_id": submission.message_id,
        "type": submission.type,
        "sent_at": submission.sent_at.isoformat(),
        "correlation_id": submission.correlation_id,
        "payload": submission.payload,
        "sha": fingerprint,
        "organiser": submission.organiser,
        "provider": submission.provider,
        "reference": submission.reference,
        "channel": submission.channel,
        "replay_of": str(submission.replay_of) if submission.replay_of is not None else None,
        "received": f"{submission.channel} from {submission.sender}",
    }


FIRST_COPY = "SELECT hub_id, payload_sha256 FROM messages WHERE sender = %s AND message_id = %s"


def accept(engine: Engine, submission: Submission) -> Accepted:
    """Store one message durably (committed before this returns), or find its first copy: a
    duplicate (same sender, message_id and payload) returns the first hub_id, the same message_id
    with another payload raises `ConflictError`. `accept_many` of one."""
    [result] = accept_many(engine, [submission])
    if isinstance(result, ConflictError):
        raise result
    return result


def accept_many(engine: Engine, submissions: Sequence[Submission]) -> list[Accepted | ConflictError]:
    """Store a batch in one transaction (one commit); each gets Accepted, or the ConflictError of
    a message_id used before with another payload (which stores nothing for that one)."""
    with unavailable_on_outage(), engine.begin() as conn:
        return accept_rows(conn, submissions)


# Messages in one statement (one, a group at intake, a file batch): the rows in the order given.
# received_at is the moment of each row's insert, not the transaction's start: the records of one
# file, stored in one transaction, are received one after the other, and waiting messages are
# applied in that order (consumers/apply.py).
ACCEPT_MANY = """
WITH v AS (
    SELECT * FROM jsonb_to_recordset(%s::jsonb)
    AS v(n int, hub_id uuid, sender text, message_id text, type text, sent_at timestamptz,
         correlation_id text, payload jsonb, sha text, organiser text, provider text, reference text,
         channel text, replay_of uuid, received text)
), m AS (
    INSERT INTO messages (hub_id, sender, message_id, type, sent_at, correlation_id, payload, payload_sha256,
                          organiser, provider, reference, channel, status, replay_of, received_at, updated_at)
    SELECT hub_id, sender, message_id, type, sent_at, correlation_id, payload, sha, organiser, provider,
           reference, channel, 'accepted', replay_of, clock_timestamp(), clock_timestamp()
    FROM v ORDER BY n
    ON CONFLICT ON CONSTRAINT uq_messages_sender_message_id DO NOTHING
    RETURNING hub_id
), pending AS (
    INSERT INTO outbox (hub_id) SELECT hub_id FROM m
), steps AS (
    INSERT INTO journey (hub_id, step, detail)
    SELECT v.hub_id, s.step, CASE s.k WHEN 1 THEN v.received ELSE v.type END
    FROM m JOIN v USING (hub_id), (VALUES (1, 'received'), (2, 'validated')) AS s(k, step)
    ORDER BY v.n, s.k
)
SELECT hub_id FROM m
"""


def accept_rows(conn: Connection, submissions: Sequence[Submission]) -> list[Accepted | ConflictError]:
    """Store many messages in one statement inside the caller's transaction; the answers as in
    `accept_many`. A data error (a value the columns cannot hold) fails the statement whole."""
    if not submissions:
        return []
    fingerprints = [item.payload_sha256() for item in submissions]
    # One JSON document for the whole group: psycopg quotes every element of an array parameter
    # with a regular expression (~70 us a message for the payloads), a document is one json.dumps.
    rows = [
        _accept_row(item, sha, n) for n, (item, sha) in enumerate(zip(submissions, fingerprints, strict=True))
    ]
    cur = raw(conn)
    stored = {r.hub_id for r in cur.execute(ACCEPT_MANY, (json.dumps(rows),))}
    return [
        Accepted(hub_id=item.hub_id, duplicate=False)
        if item.hub_id in stored
        else _first_copy(conn, item, sha)
        for item, sha in zip(submissions, fingerprints, strict=True)
    ]


def accept_in(conn: Connection, item: Submission) -> Accepted | ConflictError:
    """Store one message inside the caller's transaction (an edited replay stores its copy with
    the original's change); the answer as in `accept_many`."""
    [answer] = accept_rows(conn, [item])
    return answer


def _first_copy(conn: Connection, item: Submission, fingerprint: str) -> Accepted | ConflictError:
    """The answer for a message whose (sender, message_id) was stored before: a duplicate, or a
    conflict if its payload differs."""
    first = raw(conn).execute(FIRST_COPY, (item.sender, item.message_id)).fetchone()
    assert first is not None
    if first.payload_sha256 != fingerprint:
        return ConflictError(
            f"message_id {item.message_id!r} was already used with a different payload", str(first.hub_id)
        )
    return Accepted(hub_id=first.hub_id, duplicate=True)


# A worker can take a message before its publish confirm is back here: the `queued` step then
# takes a time just before the worker's first step, so the journey (ordered by time) stays causal.
# Only the worker's steps since the message was last sent on its way count: a replayed or
# requeued message has older attempts, which its new `queued` must not be dated before.
MARK_PUBLISHED = """
WITH sent AS (DELETE FROM outbox WHERE hub_id = ANY(%(ids)s) RETURNING hub_id)
INSERT INTO journey (hub_id, step, detail, at)
SELECT s.hub_id, 'queued', %(detail)s,
       LEAST(clock_timestamp(),
             (SELECT min(j.at) - interval '1 microsecond' FROM journey j
              WHERE j.hub_id = s.hub_id AND j.step NOT IN ('received', 'validated', 'edited', 'queued')
                AND j.at > coalesce((SELECT max(r.at) FROM journey r WHERE r.hub_id = s.hub_id
                                     AND r.step IN ('replayed', 'requeued')), '-infinity')))
FROM sent s
"""


def mark_published(conn: Connection, hub_ids: Sequence[uuid.UUID], detail: str = "published") -> None:
    """Record that RabbitMQ confirmed these messages (the relay stops sending them)."""
    if hub_ids:
        raw(conn).execute(MARK_PUBLISHED, {"ids": list(hub_ids), "detail": detail})


LOCK_UNPUBLISHED = """
SELECT hub_id FROM outbox WHERE created_at < now() - make_interval(secs => %(older_than)s)
ORDER BY created_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
"""


def lock_unpublished(conn: Connection, older_than_s: float, limit: int) -> list[uuid.UUID]:
    """Lock messages that were stored but never confirmed by RabbitMQ (other relays skip them)."""
    rows = raw(conn).execute(LOCK_UNPUBLISHED, {"older_than": older_than_s, "limit": limit}).fetchall()
    return [r.hub_id for r in rows]


LOCK_STALE = """
SELECT m.hub_id FROM messages m
WHERE m.status IN ('accepted', 'retrying')
  AND m.updated_at < now() - make_interval(secs => %(older_than)s)
  AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.hub_id = m.hub_id)
ORDER BY m.updated_at LIMIT %(limit)s
FOR UPDATE OF m SKIP LOCKED
"""
TOUCH_STALE = """
WITH t AS (UPDATE messages SET updated_at = clock_timestamp() WHERE hub_id = ANY(%(ids)s) RETURNING hub_id)
INSERT INTO journey (hub_id, step, detail) SELECT hub_id, 'requeued', %(detail)s FROM t
"""


def lock_stale(conn: Connection, older_than_s: float, limit: int) -> list[uuid.UUID]:
    """Lock messages that were published but are still not final long after any retry was due:
    their AMQP message was lost (a broker that lost its disk, a retry it could not store)."""
    rows = raw(conn).execute(LOCK_STALE, {"older_than": older_than_s, "limit": limit}).fetchall()
    return [r.hub_id for r in rows]


def mark_requeued(conn: Connection, hub_ids: Sequence[uuid.UUID], detail: str) -> None:
    """Note that stale messages were sent again (and restart their clock)."""
    if hub_ids:
        raw(conn).execute(TOUCH_STALE, {"ids": list(hub_ids), "detail": detail})


ENTER_INBOX = """
INSERT INTO inbox (consumer, hub_id, outcome) SELECT %(consumer)s, hub_id, %(outcome)s FROM messages
WHERE hub_id = %(hub_id)s
ON CONFLICT ON CONSTRAINT pk_inbox DO NOTHING
RETURNING hub_id
"""


def enter_inbox(conn: Connection, hub_id: uuid.UUID, outcome: str, consumer: str = STATE_CONSUMER) -> bool:
    """Insert the inbox row; False means the message was dealt with already (the unique key decides)."""
    cur = raw(conn).execute(ENTER_INBOX, {"consumer": consumer, "hub_id": hub_id, "outcome": outcome})
    return cur.fetchone() is not None


# The sender's role and organisers come along, so that rules which depend on who sent a message
# (an assignment by the organiser's own system or by a provider) need no query of their own.
ENTER_INBOX_AND_LOAD = """
WITH c AS (
    INSERT INTO inbox (consumer, hub_id, outcome) SELECT %(consumer)s, hub_id, 'applied' FROM messages
    WHERE hub_id = %(hub_id)s
    ON CONFLICT ON CONSTRAINT pk_inbox DO NOTHING
    RETURNING hub_id
)
SELECT m.hub_id, m.sender, m.type, m.message_id, m.payload,
       s.role AS sender_role, s.organisers AS sender_organisers
FROM messages m JOIN c USING (hub_id) LEFT JOIN clients s ON s.name = m.sender
"""


def enter_inbox_and_load(conn: Connection, hub_id: uuid.UUID, consumer: str = STATE_CONSUMER) -> Any:
    """Insert the inbox row and read the message (and its sender's role) in one round trip; None if
    the message was dealt with before."""
    return raw(conn).execute(ENTER_INBOX_AND_LOAD, {"consumer": consumer, "hub_id": hub_id}).fetchone()


# The same for a batch, in the order given (so that two batches take the inbox keys in one order).
ENTER_INBOX_AND_LOAD_MANY = """
WITH c AS (
    INSERT INTO inbox (consumer, hub_id, outcome)
    SELECT %(consumer)s, m.hub_id, 'applied'
    FROM unnest(%(hub_ids)s::uuid[]) WITH ORDINALITY AS i(hub_id, n) JOIN messages m USING (hub_id)
    ORDER BY i.n
    ON CONFLICT ON CONSTRAINT pk_inbox DO NOTHING
    RETURNING hub_id
)
SELECT m.hub_id, m.sender, m.type, m.message_id, m.payload,
       s.role AS sender_role, s.organisers AS sender_organisers
FROM messages m JOIN c USING (hub_id) LEFT JOIN clients s ON s.name = m.sender
"""


def enter_inbox_and_load_many(
    conn: Connection, hub_ids: Sequence[uuid.UUID], consumer: str = STATE_CONSUMER
) -> dict[uuid.UUID, Any]:
    """`enter_inbox_and_load` for several messages in one statement: the rows of those entered
    now, by hub_id (one not among them was dealt with before, or is not in the store)."""
    cur = raw(conn).execute(ENTER_INBOX_AND_LOAD_MANY, {"consumer": consumer, "hub_ids": list(hub_ids)})
    return {row.hub_id: row for row in cur}


# The status and its journey steps carry one time, of the moment it was decided: not the
# transaction's start (`now()`), which for a worker's batch can lie before the `queued` step that
# the publisher recorded while the worker was already at work.
FINISH = """
WITH t AS (SELECT coalesce(%(at)s::timestamptz, clock_timestamp()) AS at
), u AS (
    UPDATE messages SET status = %(status)s, errors = %(errors)s, attempts = %(attempts)s, updated_at = t.at
    FROM t WHERE hub_id = %(hub_id)s
), o AS (
    UPDATE inbox SET outcome = %(status)s
    WHERE consumer = %(consumer)s AND hub_id = %(hub_id)s AND outcome <> %(status)s
)
INSERT INTO journey (hub_id, step, detail, at)
SELECT %(hub_id)s, s.step, s.detail, t.at
FROM t, (VALUES (1, 'attempt', %(attempt_detail)s), (2, %(status)s, %(detail)s)) AS s(n, step, detail)
ORDER BY s.n
"""


def finish(
    conn: Connection,
    hub_id: uuid.UUID,
    status: str,
    detail: str,
    attempts: int,
    errors: list[dict[str, str]] | None = None,
    consumer: str = STATE_CONSUMER,
    at: datetime | None = None,
) -> None:
    """Record the outcome of a message just entered in the inbox: status, errors, two journey steps
    (at `at`, the moment it was decided, when that was earlier than now)."""
    raw(conn).execute(
        FINISH,
        {
            "status": status,
            "errors": Jsonb(errors or []),
            "attempts": attempts,
            "hub_id": hub_id,
            "consumer": consumer,
            "attempt_detail": f"attempt {attempts}",
            "detail": detail,
            "at": at,
        },
    )


# FINISH for the messages of a batch that all applied (no errors), in one statement: one time for
# the batch, each message's two steps in the batch's order.
FINISH_MANY = """
WITH f AS (
    SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb)
    AS f(n int, hub_id uuid, status text, detail text, attempts int)
), t AS (SELECT clock_timestamp() AS at
), u AS (
    UPDATE messages m SET status = f.status, errors = '[]'::jsonb, attempts = f.attempts, updated_at = t.at
    FROM f, t WHERE m.hub_id = f.hub_id
), o AS (
    UPDATE inbox i SET outcome = f.status
    FROM f WHERE i.consumer = %(consumer)s AND i.hub_id = f.hub_id AND i.outcome <> f.status
)
INSERT INTO journey (hub_id, step, detail, at)
SELECT f.hub_id, CASE s.k WHEN 1 THEN 'attempt' ELSE f.status END,
       CASE s.k WHEN 1 THEN 'attempt ' || f.attempts ELSE f.detail END, t.at
FROM f, t, (VALUES (1), (2)) AS s(k)
ORDER BY f.n, s.k
"""


def finish_many(
    conn: Connection, outcomes: Sequence[tuple[uuid.UUID, str, str, int]], consumer: str = STATE_CONSUMER
) -> None:
    """`finish` (no errors) for several messages just entered in the inbox, in one statement:
    each (hub_id, status, detail, attempts)."""
    if not outcomes:
        return
    rows = [
        {"n": n, "hub_id": str(hub_id), "status": status, "detail": detail, "attempts": attempts}
        for n, (hub_id, status, detail, attempts) in enumerate(outcomes)
    ]
    raw(conn).execute(FINISH_MANY, {"rows": json.dumps(rows), "consumer": consumer})


def fail(engine: Engine, hub_id: uuid.UUID, attempts: int | None, reason: str, detail: str) -> bool:
    """Give up on a message: status `failed`, kept for an admin to replay. False if it was done already."""
    with unavailable_on_outage(), engine.begin() as conn:
        if not enter_inbox(conn, hub_id, "failed"):
            return False
        set_status(conn, hub_id, "failed", errors=[{"field": "", "message": reason}], attempts=attempts)
        steps = [("attempt", f"attempt {attempts}")] if attempts else []
        add_steps(conn, hub_id, [*steps, ("failed", detail)])
    # An admin has to look at it (and may replay it); the hub itself goes on: a warning, once.
    log.warning("message %s failed: %s", hub_id, reason)
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
    # The moment of the change, as the journey's steps have it (not the transaction's start).
    values: dict[str, Any] = {"status": status, "updated_at": func.clock_timestamp()}
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


def find_own(engine: Engine, sender: str, message_id: str) -> uuid.UUID | None:
    """The hub_id of `sender`'s own message with this message_id (unique per sender), or None."""
    with unavailable_on_outage(), engine.connect() as conn:
        found = raw(conn).execute(FIRST_COPY, (sender, message_id)).fetchone()
    return None if found is None else found.hub_id


def describe(engine: Engine, hub_id: uuid.UUID) -> dict[str, Any] | None:
    """A message as the status API shows it, with its journey; None if there is no such message."""
    with unavailable_on_outage(), engine.connect() as conn:
        row = load(conn, hub_id)
        if row is None:
            return None
        steps = journey_of(conn, hub_id)
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
        # Rule reasons quote voucher numbers and ids, which a sender may have filled with a HETU.
        "errors": [{k: mask_text(v) if isinstance(v, str) else v for k, v in e.items()} for e in row.errors],
        "journey": [{"at": _iso(s.at), "step": s.step, "detail": mask_text(s.detail)} for s in steps],
    }


# Steps after which a message is (again) on its way to the queue: `queued` follows them.
_SENT = frozenset({"validated", "edited", "replayed", "requeued", "queued"})


class Step(NamedTuple):
    """One journey step."""

    at: datetime
    step: str
    detail: str


def journey_of(conn: Connection, hub_id: uuid.UUID) -> list[Step]:
    """A message's journey steps (at, step, detail) in causal order.

    MARK_PUBLISHED dates `queued` before the worker's first step, but when its statement read
    before the worker committed it saw no such step. A message is in the queue before a worker
    takes it, so such a `queued` is shown (and dated) right after the step that sent it on its
    way (`validated`, `replayed`, ...), before the worker's steps that followed."""
    rows = conn.execute(
        select(journey.c.at, journey.c.step, journey.c.detail)
        .where(journey.c.hub_id == hub_id)
        .order_by(journey.c.at, journey.c.id)
    ).all()
    steps: list[Step] = []
    for row in (Step(r.at, r.step, r.detail) for r in rows):
        if row.step == "queued":
            sent = max((k for k, s in enumerate(steps) if s.step in _SENT), default=-1)
            if sent + 1 < len(steps) and steps[sent].step != "queued":
                row = row._replace(at=min(row.at, steps[sent + 1].at - timedelta(microseconds=1)))
                steps.insert(sent + 1, row)
                continue
        steps.append(row)
    return steps


def _iso(value: datetime) -> str:
    return value.isoformat()
