"""REST for admins (INTERFACES §3): search messages, inspect one, replay, bulk replay, audit log.

Every route is a thin shell over the core functions in `hub.search`, `hub.replay`,
`hub.replayjobs` and `hub.audit`, which the CLI and the admin page call too; they write the
audit rows. A caller that is not an admin is answered 403.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from psop_hub.api.deps import SenderDep, ServicesDep
from psop_hub.hub import search
from psop_hub.hub.errors import NotAllowed, NotFound
from psop_hub.hub.senders import Sender

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


def admin_only(sender: SenderDep) -> Sender:
    """The authenticated sender, if it is an admin; 403 otherwise."""
    if not sender.is_admin:
        raise NotAllowed("only admins may use the admin API")
    return sender


AdminDep = Annotated[Sender, Depends(admin_only)]


def hub_id_of(value: str) -> uuid.UUID:
    """A path's hub_id; anything that is not a UUID names no message."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"no message {value}") from None


def filter_of(
    status: Annotated[list[str] | None, Query(description="a status, repeated or comma-separated")] = None,
    type: str | None = None,
    sender: str | None = None,
    organiser: str | None = None,
    provider: str | None = None,
    since: Annotated[str | None, Query(description="received at or after, ISO 8601 with offset")] = None,
    until: Annotated[str | None, Query(description="received before, ISO 8601 with offset")] = None,
    q: Annotated[
        str | None, Query(description="hub_id, message, correlation, voucher, order or event id")
    ] = None,
) -> search.MessageFilter:
    """The search filter from the query string (422 naming each field at fault)."""
    return search.MessageFilter.from_json(
        {
            "status": ",".join(status) if status else None,
            "type": type,
            "sender": sender,
            "organiser": organiser,
            "provider": provider,
            "since": since,
            "until": until,
            "q": q,
        }
    )


FilterDep = Annotated[search.MessageFilter, Depends(filter_of)]


@router.get("/messages")
def search_messages(
    admin: AdminDep,
    services: ServicesDep,
    flt: FilterDep,
    limit: Annotated[int, Query(ge=1, le=search.MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    counts: bool = True,
) -> dict[str, Any]:
    """Messages matching the filter, newest first, with the total and counts per status."""
    page = search.search_messages(services.engine, flt, limit, offset).to_json()
    if counts:
        page["counts"] = search.status_counts(services.engine, flt)
    page["filter"] = flt.to_json()
    return page


@router.get("/messages/{hub_id}")
def show_message(
    admin: AdminDep, services: ServicesDep, hub_id: str, reveal: bool = False, reason: str = ""
) -> dict[str, Any]:
    """One message with payload (HETUs masked unless `reveal=true`), errors and journey; audited."""
    detail = search.show_message(services.engine, admin.name, hub_id_of(hub_id), reveal=reveal, reason=reason)
    return detail.to_json()
