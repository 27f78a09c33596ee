"""Edited replays: an admin's edited payload becomes a new message, validated like any other.

The copy goes through the same parser (`mappings.canonical.parse_message`) and the same scope
check as a message from the original sender: an invalid edit is refused with every error found
(on `payload.*` paths), and an edit cannot move a message out of its sender's scope (a provider's
delivery edited to name another provider is refused). The rest is `hub.replay.replay_copy`.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from sqlalchemy.engine import Engine

from psop_hub.adapters.intake import to_submission
from psop_hub.hub.errors import InvalidInput
from psop_hub.hub.publishing import Publisher
from psop_hub.hub.replay import Original, ReplayResult, copy_message_id, original_of, replay_copy
from psop_hub.hub.senders import check_may_send
from psop_hub.mappings.canonical import parse_message


def edited_envelope(original: Original, payload: Any) -> dict[str, Any]:
    """The canonical message an edit stands for: the original's type, sent_at and correlation id
    around the new payload, under a new message_id."""
    if not isinstance(payload, dict):
        raise InvalidInput("payload", "payload must be a JSON object")
    message: dict[str, Any] = {
        "message_id": copy_message_id(original.message_id),
        "type": original.type,
        "sent_at": original.sent_at.isoformat(),
        "payload": payload,
    }
    if original.correlation_id is not None:
        message["correlation_id"] = original.correlation_id
    return message


def replay_edited(
    engine: Engine,
    actor: str,
    hub_id: uuid.UUID,
    payload: Any,
    reason: str = "",
    publisher: Publisher | None = None,
) -> ReplayResult:
    """Validate the edited payload and replay it as a copy of the failed or rejected message
    `hub_id`: `ValidationFailed` lists every error; `NotAllowed` if the edit leaves the sender's
    scope; `ConflictError` if the original is no longer failed or rejected; `NotFound`."""
    original = original_of(engine, hub_id)
    envelope = parse_message(edited_envelope(original, payload))
    check_may_send(original.sender, envelope.type, envelope.payload.organiser, envelope.payload.provider)
    copy = replace(to_submission(original.sender, envelope, "replay"), replay_of=original.hub_id)
    return replay_copy(engine, actor, original, copy, reason, publisher)
