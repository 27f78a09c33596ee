"""REST: a voucher or an order with its deliveries (INTERFACES §3)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from psop_hub.api.deps import SenderDep, ServicesDep, lookup_key
from psop_hub.hub.database import unavailable_on_outage
from psop_hub.hub.errors import NotFound
from psop_hub.hub.senders import may_read
from psop_hub.hub.views import order_view, voucher_view

router = APIRouter(prefix="/api/v1")


@router.get("/vouchers/{organiser}/{voucher_number}")
def get_voucher(
    sender: SenderDep, services: ServicesDep, organiser: str, voucher_number: str
) -> dict[str, Any]:
    """A voucher with its deliveries: the organiser's systems, its provider, admins."""
    view = None
    if lookup_key(organiser, voucher_number):
        with unavailable_on_outage(), services.engine.connect() as conn:
            view = voucher_view(conn, organiser, voucher_number)
    if view is None or not may_read(sender, organiser, view["provider"]):
        raise NotFound(f"no voucher {voucher_number} of organiser {organiser}")
    return view


@router.get("/orders/{organiser}/{order_number}")
def get_order(sender: SenderDep, services: ServicesDep, organiser: str, order_number: str) -> dict[str, Any]:
    """An order with its deliveries: the organiser's systems, its provider, admins."""
    view = None
    if lookup_key(organiser, order_number):
        with unavailable_on_outage(), services.engine.connect() as conn:
            view = order_view(conn, organiser, order_number)
    if view is None or not may_read(sender, organiser, view["provider"]):
        raise NotFound(f"no order {order_number} of organiser {organiser}")
    return view
