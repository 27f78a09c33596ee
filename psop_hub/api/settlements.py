"""REST: a settlement, its rows and its payment status (INTERFACES §3)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from psop_hub.api.deps import SenderDep, ServicesDep, lookup_key
from psop_hub.hub.database import unavailable_on_outage
from psop_hub.hub.errors import NotFound
from psop_hub.hub.senders import may_read
from psop_hub.hub.settlement_views import settlement_view

router = APIRouter(prefix="/api/v1")


@router.get("/settlements/{settlement_id}")
def get_settlement(sender: SenderDep, services: ServicesDep, settlement_id: str) -> dict[str, Any]:
    """A settlement with its rows and payment status (its organiser's systems, its provider, admins)."""
    if not lookup_key(settlement_id):
        raise NotFound(f"no settlement {settlement_id}")
    with unavailable_on_outage(), services.engine.connect() as conn:
        view = settlement_view(conn, settlement_id)
    # Someone else's settlement is answered exactly like a missing one.
    if view is None or not may_read(sender, view["organiser"], view["provider"]):
        raise NotFound(f"no settlement {settlement_id}")
    return view
