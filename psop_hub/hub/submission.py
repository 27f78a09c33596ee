"""What an adapter hands to the store: a canonical message (`mappings.canonical.Envelope`) with
its sender, channel and search keys, transport-independent; and the store's answer."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Submission:
    """A validated canonical message from an authenticated sender, before it is stored."""

    sender: str
    channel: str
    message_id: str
    type: str
    sent_at: datetime
    correlation_id: str | None
    payload: dict[str, Any]
    organiser: str | None = None
    provider: str | None = None
    reference: str | None = None
    replay_of: uuid.UUID | None = None
    hub_id: uuid.UUID = field(default_factory=uuid.uuid4)

    def payload_sha256(self) -> str:
        """A stable fingerprint of type and payload: same fingerprint = duplicate, other = conflict."""
        canonical = json.dumps(
            {"type": self.type, "payload": self.payload}, sort_keys=True, separators=(",", ":")
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Accepted:
    """The store's answer: the message's hub_id, and whether it was already there."""

    hub_id: uuid.UUID
    duplicate: bool
