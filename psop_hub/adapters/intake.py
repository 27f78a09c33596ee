"""The one intake path every inbound transport shares: scope check, then the durable store."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import Engine

from psop_hub.hub import store
from psop_hub.hub.errors import NotAllowed, PermanentError
from psop_hub.hub.senders import Sender, check_may_send
from psop_hub.hub.submission import Accepted, Submission
from psop_hub.mappings.canonical import Envelope


def to_submission(sender: Sender, envelope: Envelope, channel: str) -> Submission:
    """The transport-independent form of a validated message from this sender."""
    payload = envelope.payload
    keys = payload.reference_keys
    reference = next(iter(keys.values()), None)
    # A type that names no organiser (payment.confirmed) is filed under the sender's organiser
    # when it acts for one only; a payment's organiser is checked when it is applied.
    organiser = payload.organiser or sender.sole_organiser
    return Submission(
        sender=sender.name,
        channel=channel,
        message_id=envelope.message_id,
        type=envelope.type,
        sent_at=envelope.sent_at,
        correlation_id=envelope.correlation_id,
        payload=envelope.payload_json(),
        organiser=organiser,
        provider=payload.provider,
        reference=reference,
    )


def prepare(sender: Sender, envelope: Envelope, channel: str) -> Submission:
    """Check the sender's scope (`NotAllowed`) and give the message its transport-independent
    form, ready for the store (REST and SOAP hand it to the intake's group commit)."""
    payload = envelope.payload
    check_may_send(sender, envelope.type, payload.organiser, payload.provider)
    return to_submission(sender, envelope, channel)


def submit(engine: Engine, sender: Sender, envelope: Envelope, channel: str) -> Accepted:
    """Check the sender's scope and store the message at once, alone (its own commit); raises
    NotAllowed or ConflictError."""
    return store.accept(engine, prepare(sender, envelope, channel))


def submit_many(
    engine: Engine, sender: Sender, envelopes: Sequence[Envelope], channel: str
) -> list[Accepted | PermanentError]:
    """Scope-check and store a batch in one transaction; each gets Accepted or why it was refused."""
    results: list[Accepted | PermanentError | None] = [None] * len(envelopes)
    allowed: list[tuple[int, Submission]] = []
    for i, envelope in enumerate(envelopes):
        payload = envelope.payload
        try:
            check_may_send(sender, envelope.type, payload.organiser, payload.provider)
        except NotAllowed as exc:
            results[i] = exc
            continue
        allowed.append((i, to_submission(sender, envelope, channel)))
    for (i, _), outcome in zip(allowed, store.accept_many(engine, [s for _, s in allowed]), strict=True):
        results[i] = outcome
    return [r for r in results if r is not None]
