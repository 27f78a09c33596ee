"""REST routes of INTERFACES §3: submit a message, read its status, read a voucher."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from psop_hub.adapters.intake import submit
from psop_hub.api.deps import SenderDep, Services, ServicesDep, read_body
from psop_hub.api.metrics import RECEIVED
from psop_hub.hub import store
from psop_hub.hub.database import unavailable_on_outage
from psop_hub.hub.errors import HubError, NotFound
from psop_hub.hub.senders import Sender
from psop_hub.hub.views import order_view, voucher_view
from psop_hub.mappings.canonical import MESSAGE_TYPES, parse_message
from psop_hub.mappings.jsontext import parse_json

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
async def post_message(request: Request, sender: SenderDep, services: ServicesDep) -> JSONResponse:
    """Accept one canonical message: 202 once it is stored durably, 200 for a duplicate."""
    body = await read_body(request, services.settings.max_body_bytes)
    raw = parse_json(body, services.settings.max_json_depth)
    # Only known types become a metrics label: raw sender text there could be anything, a HETU too.
    claimed = raw.get("type") if isinstance(raw, dict) else None
    type_label = claimed if claimed in MESSAGE_TYPES else "unknown"
    try:
        envelope = parse_message(raw)
        accepted = await run_in_threadpool(submit, services.engine, sender, envelope, "rest")
    except HubError as exc:
        RECEIVED.labels("rest", type_label, type(exc).__name__).inc()
        raise
    answer = {"hub_id": str(accepted.hub_id), "message_id": envelope.message_id}
    if accepted.duplicate:
        RECEIVED.labels("rest", envelope.type, "duplicate").inc()
        return JSONResponse({**answer, "status": "duplicate"}, status_code=200)
    RECEIVED.labels("rest", envelope.type, "accepted").inc()
    services.dispatcher.submit(accepted.hub_id)
    return JSONResponse({**answer, "status": "accepted"}, status_code=202)


def _message_of(services: Services, sender: Sender, hub_id: str) -> dict[str, Any]:
    try:
        key = uuid.UUID(hub_id)
    except ValueError as exc:
        raise NotFound(f"no message {hub_id}") from exc
    found = store.describe(services.engine, key)
    # Someone else's message is answered exactly like a missing one: its existence is not theirs.
    if found is None or not (sender.is_admin or found["sender"] == sender.name):
        raise NotFound(f"no message {hub_id}")
    return found


@router.get("/messages/{hub_id}")
def get_message(sender: SenderDep, services: ServicesDep, hub_id: str) -> dict[str, Any]:
    """A message's status, errors and journey (its sender and admins only)."""
    return _message_of(services, sender, hub_id)


def lookup_key(*values: str) -> bool:
    """Whether path values can name a record at all: identifiers are 1-100 characters without
    control characters (INTERFACES §2), so anything else (a NUL byte, which the database driver
    refuses in text) is simply not found, as any unknown number."""
    return all(0 < len(v) <= 100 and v.isprintable() for v in values)


def _visible(sender: Sender, organiser: str, view: dict[str, Any] | None) -> bool:
    """The organiser's systems, the voucher's or order's provider, and admins may see it."""
    return view is not None and (
        sender.is_admin
        or (sender.role == "system" and sender.organiser == organiser)
        or (sender.role == "provider" and sender.provider == view["provider"])
    )


@router.get("/vouchers/{organiser}/{voucher_number}")
def get_voucher(
    sender: SenderDep, services: ServicesDep, organiser: str, voucher_number: str
) -> dict[str, Any]:
    """A voucher with its deliveries."""
    if not lookup_key(organiser, voucher_number):
        raise NotFound(f"no voucher {voucher_number} of organiser {organiser}")
    with unavailable_on_outage(), services.engine.connect() as conn:
        view = voucher_view(conn, organiser, voucher_number)
    if view is None or not _visible(sender, organiser, view):
        raise NotFound(f"no voucher {voucher_number} of organiser {organiser}")
    return view


@router.get("/orders/{organiser}/{order_number}")
def get_order(sender: SenderDep, services: ServicesDep, organiser: str, order_number: str) -> dict[str, Any]:
    """An order with its deliveries."""
    if not lookup_key(organiser, order_number):
        raise NotFound(f"no order {order_number} of organiser {organiser}")
    with unavailable_on_outage(), services.engine.connect() as conn:
        view = order_view(conn, organiser, order_number)
    if view is None or not _visible(sender, organiser, view):
        raise NotFound(f"no order {order_number} of organiser {organiser}")
    return view
