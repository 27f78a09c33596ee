"""The one intake path every inbound transport shares: scope check, then the durable store."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from psop_hub.hub import store
from psop_hub.hub.envelope import Accepted, Incoming
from psop_hub.hub.senders import Sender, check_may_send
from psop_hub.mappings.canonical import Envelope


def to_incoming(sender: Sender, envelope: Envelope, channel: str) -> Incoming:
    """The transport-independent form of a validated message from this sender."""
    payload = envelope.payload
    keys = payload.reference_keys  # type: ignore[attr-defined]
    reference = next(iter(keys.values()), None)
    organiser = payload.organiser or sender.organiser  # type: ignore[attr-defined]
    return Incoming(
        sender=sender.name,
        channel=channel,
        message_id=envelope.message_id,
        type=envelope.type,
        sent_at=envelope.sent_at,
        correlation_id=envelope.correlation_id,
        payload=envelope.payload_json(),
        organiser=organiser,
        provider=payload.provider,  # type: ignore[attr-defined]
        reference=reference,
    )


def submit(engine: Engine, sender: Sender, envelope: Envelope, channel: str) -> Accepted:
    """Check the sender's scope and store the message durably; raises NotAllowed or ConflictError."""
    payload = envelope.payload
    check_may_send(sender, envelope.type, payload.organiser, payload.provider)  # type: ignore[attr-defined]
    return store.accept(engine, to_incoming(sender, envelope, channel))
