"""REST: submit a canonical message and read its status and journey (INTERFACES §3)."""

from __future__ import annotations

import unicodedata
import uuid
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from psop_hub.adapters.intake import prepare
from psop_hub.api.accesslog import note_sender
from psop_hub.api.deps import (
    SenderDep,
    Services,
    ServicesDep,
    authenticated,
    bearer_secret,
    lookup_key,
    read_json,
    services_of,
)
from psop_hub.api.metrics import RECEIVED
from psop_hub.hub import store
from psop_hub.hub.errors import AuthenticationFailed, HubError, NotFound
from psop_hub.hub.groupcommit import Intake
from psop_hub.hub.ratelimit import RateLimited
from psop_hub.hub.senders import Sender, digest_of, may_read_message
from psop_hub.mappings.canonical import MESSAGE_TYPES, parse_message

router = APIRouter(prefix="/api/v1")


MESSAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["message_id", "type", "sent_at", "payload"],
                    "properties": {
                        "message_id": {"type": "string", "minLength": 1, "maxLength": 100},
                        "type": {"type": "string"},
                        "sent_at": {"type": "string", "format": "date-time"},
                        "correlation_id": {"type": "string", "minLength": 1, "maxLength": 100},
                        "payload": {"type": "object"},
                    },
                }
            }
        },
    }
}


@router.post(
    "/messages",
    status_code=202,
    openapi_extra=MESSAGE_BODY,
    responses={200: {"description": "duplicate"}, 409: {"description": "conflict"}},
)
async def post_message(request: Request) -> JSONResponse:
    """Accept one canonical message: 202 once it is stored durably, 200 for a duplicate.

    The sender is looked up (and its rate limit counted) by the intake's group commit, in the
    transaction that stores the message (hub.groupcommit): no request thread, one statement for
    the whole group. A body that cannot be read or parsed is judged after the sender, as on
    every route: who is not a client hears 401, and one over its rate limit 429."""
    # The services without a dependency: FastAPI solving one costs ~5 % of this route's CPU.
    services = services_of(request)
    secret = bearer_secret(request)
    try:
        raw = await read_json(request)
    except HubError:
        await authenticated(request)
        raise
    # Only known types become a metrics label: raw sender text there could be anything, a HETU too.
    claimed = raw.get("type") if isinstance(raw, dict) else None
    type_label = claimed if claimed in MESSAGE_TYPES else "unknown"
    try:
        envelope = parse_message(raw)
    except HubError as exc:
        await authenticated(request)
        RECEIVED.labels("rest", type_label, type(exc).__name__).inc()
        raise
    # Stored with the messages of concurrent requests, answered once its group is committed.
    stored = await services.intake.accept_async(
        Intake(partial(prepare, envelope=envelope, channel="rest"), digest=digest_of(secret))
    )
    if stored.sender is not None:
        note_sender(request, stored.sender.name)
    try:
        accepted = stored.accepted()
    except (AuthenticationFailed, RateLimited):
        raise
    except HubError as exc:
        RECEIVED.labels("rest", type_label, type(exc).__name__).inc()
        raise
    answer = {"hub_id": str(accepted.hub_id), "message_id": envelope.message_id}
    if accepted.duplicate:
        RECEIVED.labels("rest", envelope.type, "duplicate").inc()
        return JSONResponse({**answer, "status": "duplicate"}, status_code=200)
    RECEIVED.labels("rest", envelope.type, "accepted").inc()
    return JSONResponse({**answer, "status": "accepted"}, status_code=202)


def _message_of(services: Services, sender: Sender, hub_id: str) -> dict[str, Any]:
    try:
        key = uuid.UUID(hub_id)
    except ValueError as exc:
        raise NotFound(f"no message {hub_id}") from exc
    found = store.describe(services.engine, key)
    # Someone else's message is answered exactly like a missing one: its existence is not theirs.
    if found is None or not may_read_message(sender, found["sender"]):
        raise NotFound(f"no message {hub_id}")
    return found


@router.get("/messages/{hub_id}")
def get_message(sender: SenderDep, services: ServicesDep, hub_id: str) -> dict[str, Any]:
    """A message's status, errors and journey (its sender and admins only)."""
    return _message_of(services, sender, hub_id)


@router.get(
    "/messages",
    responses={404: {"description": "no message of this sender with that message_id"}},
)
def find_message(
    sender: SenderDep,
    services: ServicesDep,
    message_id: Annotated[str, Query(min_length=1, max_length=100, description="the sender's own id")],
) -> dict[str, Any]:
    """The caller's own message with this `message_id` (as `GET /messages/{hub_id}`): a sender
    finds only what it sent itself, so another sender's message of the same id is not found."""
    message_id = unicodedata.normalize("NFC", message_id)  # as stored (mappings.fields)
    found = store.find_own(services.engine, sender.name, message_id) if lookup_key(message_id) else None
    if found is None:
        raise NotFound(f"no message {message_id} of this sender")
    return _message_of(services, sender, str(found))
