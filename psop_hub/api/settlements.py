"""REST: settlements, their rows and their payment status (INTERFACES §3).

Scoped as every read: an organiser's systems see their organisers' settlements, a provider its
own (the settlements in which it is the provider), admins all. Someone else's settlement is
answered exactly like a missing one, and a list never holds one.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query

from psop_hub.api.deps import SenderDep, ServicesDep, lookup_key
from psop_hub.hub.calendar import parse_month
from psop_hub.hub.database import unavailable_on_outage
from psop_hub.hub.errors import InvalidInput, NotFound
from psop_hub.hub.senders import Sender, may_read
from psop_hub.hub.settlement_views import settlement_list, settlement_view

router = APIRouter(prefix="/api/v1")

BUSINESS_ID = r"^[0-9]{7}-[0-9]$"


@router.get("/settlements")
def list_settlements(
    sender: SenderDep,
    services: ServicesDep,
    month: Annotated[str | None, Query(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")] = None,
    organiser: Annotated[
        str | None, Query(pattern=BUSINESS_ID, description="the organiser's business ID")
    ] = None,
    provider: Annotated[
        str | None, Query(pattern=BUSINESS_ID, description="the provider's business ID")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The settlements the caller may read (without rows), newest month first: an organiser's
    systems their organisers', a provider its own, admins any; filtered by month and parties."""
    wanted = None if month is None else _month(month)
    organisers, provider = _scoped(sender, organiser, provider)
    if organisers == () or provider == "":
        return {"settlements": []}  # a filter outside the caller's scope: nothing of theirs
    with unavailable_on_outage(), services.engine.connect() as conn:
        found = settlement_list(
            conn,
            organisers=organisers,
            provider=provider,
            month=wanted,
            limit=limit,
        )
    return {"settlements": found}


def _month(value: str) -> date:
    """The `month` filter as a date; 422 naming the field for a month the calendar lacks (0000-01)."""
    try:
        return parse_month(value)
    except ValueError as exc:
        raise InvalidInput("month", str(exc)) from None


def _scoped(
    sender: Sender, organiser: str | None, provider: str | None
) -> tuple[tuple[str, ...] | None, str | None]:
    """The organisers (None: any) and provider to list, narrowed to the caller's scope: () or ""
    where the caller asked for another's."""
    asked = None if organiser is None else (organiser,)
    if sender.is_admin:
        return asked, provider
    if sender.role == "system":
        return tuple(o for o in sender.organisers if organiser in (None, o)), provider
    own = sender.provider or ""
    return asked, (own if provider in (None, own) else "")


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
