"""REST: a voucher or an order with its deliveries (INTERFACES §3)."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from sqlalchemy.engine import Connection

from psop_hub.api.deps import SenderDep, Services, ServicesDep, lookup_key
from psop_hub.hub.database import unavailable_on_outage
from psop_hub.hub.errors import NotFound
from psop_hub.hub.senders import Sender, may_read
from psop_hub.hub.views import order_view, voucher_view

router = APIRouter(prefix="/api/v1")
ViewOf = Callable[[Connection, str, str], dict[str, Any] | None]


def _read(
    services: Services, sender: Sender, view_of: ViewOf, kind: str, organiser: str, number: str
) -> dict[str, Any]:
    view = None
    # Stored numbers are NFC (mappings.fields): any spelling of "V-é" finds the one voucher.
    number = unicodedata.normalize("NFC", number)
    if lookup_key(organiser, number):
        with unavailable_on_outage(), services.engine.connect() as conn:
            view = view_of(conn, organiser, number)
    # Someone else's record is answered exactly like a missing one.
    if view is None or not may_read(sender, organiser, view["provider"]):
        raise NotFound(f"no {kind} {number} of organiser {organiser}")
    return view


@router.get("/vouchers/{organiser}/{voucher_number}")
def get_voucher(
    sender: SenderDep, services: ServicesDep, organiser: str, voucher_number: str
) -> dict[str, Any]:
    """A voucher with its deliveries: the organiser's systems, its provider, admins."""
    return _read(services, sender, voucher_view, "voucher", organiser, voucher_number)


@router.get("/orders/{organiser}/{order_number}")
def get_order(sender: SenderDep, services: ServicesDep, organiser: str, order_number: str) -> dict[str, Any]:
    """An order with its deliveries: the organiser's systems, its provider, admins."""
    return _read(services, sender, order_view, "order", organiser, order_number)
