"""REST: a party's invoicing details, and the settlements whose invoice waits for them.

- `GET /api/v1/parties/{business_id}` and `PUT /api/v1/parties/{business_id}`: an admin for any
  party, a provider for itself, an organiser's systems for their organiser; anyone else `403`,
  decided on the business ID before anything is read (so a refusal never tells whether the party
  has details stored). PUT replaces the whole record (`name` required; `street`, `postcode`,
  `town` empty and `iban`, `bic` none when left out), checked as `hub parties set` checks it
  (python-stdnum for the Y-tunnus, IBAN and BIC), every bad field listed at once (`422`). Both
  answer the stored details and `missing_for_invoice`: what an invoice still needs of the party
  as provider (seller) and as organiser (buyer).
- `GET /api/v1/admin/settlements/waiting` (admins): settlements whose invoice waits for details.

A PUT that completes what a waiting invoice needed is enough: the file adapter notices the
change of the parties' `updated_at` on its next round and writes the invoice (as after
`hub parties set`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from psop_hub.api.deps import SenderDep, ServicesDep, read_json
from psop_hub.hub.database import unavailable_on_outage
from psop_hub.hub.errors import InvalidInput, NotAllowed, NotFound
from psop_hub.hub.parties import (
    Party,
    canonical_business_id,
    get_party,
    missing_details,
    party_from_json,
    set_party,
)
from psop_hub.hub.senders import Sender, may_manage_party
from psop_hub.hub.settlement_views import settlements_waiting_for_details

router = APIRouter(prefix="/api/v1")

_TEXT = {"type": "string"}
PARTY_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "business_id": {**_TEXT, "description": "optional; the one in the path"},
                        "name": {**_TEXT, "minLength": 2, "maxLength": 200},
                        "street": {**_TEXT, "maxLength": 35},
                        "postcode": {**_TEXT, "pattern": "^([0-9]{5})?$"},
                        "town": {**_TEXT, "maxLength": 35},
                        "iban": {"type": ["string", "null"], "example": "FI21 1234 5600 0007 85"},
                        "bic": {"type": ["string", "null"], "example": "NDEAFIHH"},
                    },
                }
            }
        },
    }
}


def _key(sender: Sender, business_id: str) -> str | None:
    """The canonical business ID (None if it is not a valid one), or 403 if the sender may not
    see or set this party's details."""
    try:
        key: str | None = canonical_business_id(business_id)
    except InvalidInput:
        key = None
    if not may_manage_party(sender, key or business_id):
        raise NotAllowed("this client may only see and set its own organiser's or provider's details")
    return key


def _view(party: Party) -> dict[str, Any]:
    return {
        "business_id": party.business_id,
        "name": party.name,
        "street": party.street,
        "postcode": party.postcode,
        "town": party.town,
        "iban": party.iban,
        "bic": party.bic,
        "missing_for_invoice": {
            "as_provider": list(missing_details(party, seller=True)),
            "as_organiser": list(missing_details(party, seller=False)),
        },
    }


@router.get("/parties/{business_id}")
def get_party_details(sender: SenderDep, services: ServicesDep, business_id: str) -> dict[str, Any]:
    """A party's invoicing details: name, postal address, IBAN and BIC (404 if none are stored)."""
    key = _key(sender, business_id)
    if key is None:
        raise NotFound(f"no invoicing details for {business_id!r}: not a valid business ID")
    with unavailable_on_outage(), services.engine.connect() as conn:
        party = get_party(conn, key)
    if party is None:
        raise NotFound(f"no invoicing details stored for {key}")
    return _view(party)


@router.put("/parties/{business_id}", openapi_extra=PARTY_BODY)
async def put_party_details(
    request: Request, sender: SenderDep, services: ServicesDep, business_id: str
) -> dict[str, Any]:
    """Store (replace) a party's invoicing details; every bad field is listed at once."""
    _key(sender, business_id)
    party = party_from_json(business_id, await read_json(request))
    stored = await run_in_threadpool(set_party, services.engine, party)
    return _view(stored)


@router.get("/admin/settlements/waiting")
def waiting_settlements(
    sender: SenderDep,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict[str, Any]:
    """Settlements whose Finvoice invoice waits for invoicing details, oldest first (admins)."""
    if not sender.is_admin:
        raise NotAllowed("only admins see the settlements waiting for invoicing details")
    waiting = settlements_waiting_for_details(services.engine, limit)
    return {"count": len(waiting), "settlements": [w.as_dict() for w in waiting]}
