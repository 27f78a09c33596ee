"""REST: an organiser's approval of a provider (INTERFACES §3)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from psop_hub.api.deps import SenderDep, ServicesDep, lookup_key
from psop_hub.hub.database import unavailable_on_outage
from psop_hub.hub.errors import NotFound
from psop_hub.hub.senders import may_read
from psop_hub.hub.views import approval_view

router = APIRouter(prefix="/api/v1")


@router.get("/providers/{organiser}/{provider}")
def get_approval(sender: SenderDep, services: ServicesDep, organiser: str, provider: str) -> dict[str, Any]:
    """The provider's approval by the organiser: version, service codes (null: all) and validity."""
    # Decided before the read, and answered exactly like a missing approval: whether a provider
    # is approved by an organiser is not a stranger's to know.
    if not lookup_key(organiser, provider) or not may_read(sender, organiser, provider):
        raise NotFound(f"no approval of provider {provider} by organiser {organiser}")
    with unavailable_on_outage(), services.engine.connect() as conn:
        view = approval_view(conn, organiser, provider)
    if view is None:
        raise NotFound(f"no approval of provider {provider} by organiser {organiser}")
    return view
