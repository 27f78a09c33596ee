"""The message pages: search with counts per status and paging, one message (payload, errors,
journey), revealing its HETUs, and the audit log. Every read goes through `hub.search` and
`hub.audit`, which audit it; nothing here queries the database itself."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from psop_hub.api.adminpage import auth
from psop_hub.api.adminpage.clock import from_form
from psop_hub.api.adminpage.render import page
from psop_hub.api.adminpage.routing import PageRoute
from psop_hub.api.deps import ServicesDep
from psop_hub.hub import audit, search
from psop_hub.hub.admin_sessions import AdminSession
from psop_hub.hub.errors import FieldError, NotFound, ValidationFailed
from psop_hub.hub.store import STATUSES
from psop_hub.mappings.canonical import MESSAGE_TYPES

router = APIRouter(prefix="/admin", route_class=PageRoute, include_in_schema=False)
SessionDep = Annotated[AdminSession, Depends(auth.current_session)]

PAGE_SIZE = 50
SEARCH_FIELDS = ("status", "type", "sender", "organiser", "provider", "since", "until", "q")
REPLAYABLE = ("failed", "rejected")


def search_form(values: Mapping[str, str]) -> dict[str, str]:
    """The search form's fields as the browser sent them (missing ones empty)."""
    return {name: (values.get(name) or "").strip() for name in SEARCH_FIELDS}


def message_filter(form: Mapping[str, str]) -> search.MessageFilter:
    """The core's filter from the form: the form's local times are Helsinki time. Raises
    `ValidationFailed` naming every field at fault."""
    errors: list[FieldError] = []
    times: dict[str, str | None] = {}
    for name in ("since", "until"):
        try:
            moment = from_form(name, form.get(name))
            times[name] = None if moment is None else moment.isoformat()
        except ValidationFailed as exc:
            errors.extend(exc.errors)
            times[name] = None
    try:
        flt = search.MessageFilter.from_json(
            {name: form.get(name) or None for name in SEARCH_FIELDS if name not in times} | times
        )
    except ValidationFailed as exc:
        errors.extend(exc.errors)
    if errors:
        raise ValidationFailed(errors)
    return flt


def shown_count(count: int, exact: bool = True) -> str:
    """A count as the page shows it: the core counts exactly up to COUNT_CAP, "10000+" beyond."""
    return f"{count}+" if not exact or count >= search.COUNT_CAP else str(count)


def choices() -> dict[str, Any]:
    """What the search form offers: every status and every message type."""
    return {"statuses": STATUSES, "types": MESSAGE_TYPES}


def hub_id_of(value: str) -> uuid.UUID:
    """A path's hub_id; anything that is not a UUID names no message."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound("No such message.") from None


def page_number(value: str | None) -> int:
    return int(value) if value and value.isdigit() and 0 < int(value) < 1_000_000 else 1


@router.get("/messages")
async def search_page(request: Request, services: ServicesDep, session: SessionDep) -> Response:
    """Search form, counts per status, one page of results (no payloads: nothing to audit)."""
    form = search_form(request.query_params)
    number = page_number(request.query_params.get("page"))
    try:
        flt = message_filter(form)
    except ValidationFailed as exc:
        return page(
            request,
            "messages.html",
            session,
            status_code=422,
            filters=form,
            form_errors=exc.errors,
            results=None,
            **choices(),
        )
    found = await run_in_threadpool(
        lambda: search.search_messages(services.engine, flt, PAGE_SIZE, (number - 1) * PAGE_SIZE, counts=True)
    )
    counts = found.counts or {}
    pages = max(1, -(-found.total // PAGE_SIZE))
    replayable = sum(counts[s] for s in REPLAYABLE if not flt.statuses or s in flt.statuses)
    return page(
        request,
        "messages.html",
        session,
        filters=form,
        form_errors=[],
        results=[m.to_json() for m in found.messages],
        total=shown_count(found.total, found.total_exact),
        counts={s: shown_count(n) for s, n in counts.items()},
        page_number=number,
        pages=pages,
        replayable=replayable,
        filter_query=urlencode({k: v for k, v in form.items() if v}),
        **choices(),
    )


async def message_page_response(
    request: Request,
    services: ServicesDep,
    session: AdminSession,
    hub_id: str,
    *,
    reveal: bool = False,
    # The one-message page; `refusal` is the core's reason why nothing was replayed.
    reason: str = "",
    status_code: int = 200,
    **context: Any,
) -> Response:
    try:
        detail = await run_in_threadpool(
            lambda: search.show_message(
                services.engine, session.admin.name, hub_id_of(hub_id), reveal=reveal, reason=reason
            )
        )
    except NotFound:
        return page(
            request, "error.html", session, status_code=404, title="Not found", message="No such message."
        )
    shown = detail.to_json()
    return page(
        request,
        "message.html",
        session,
        status_code=status_code,
        message=shown,
        replayable=shown["status"] in REPLAYABLE,
        **({"notice": None, "refusal": None} | context),
    )


@router.get("/messages/{hub_id}")
async def message_page(request: Request, services: ServicesDep, session: SessionDep, hub_id: str) -> Response:
    """One message: payload (HETUs masked), errors, journey, replay buttons. The read is audited."""
    notice = request.query_params.get("notice")
    return await message_page_response(
        request, services, session, hub_id, notice=notice if notice in NOTICES else None
    )


@router.post("/messages/{hub_id}/reveal")
async def reveal_page(request: Request, services: ServicesDep, session: SessionDep, hub_id: str) -> Response:
    """The same page with the payload's HETUs shown; the read and its reason are audited."""
    form = await auth.checked_form(request, session)
    return await message_page_response(
        request, services, session, hub_id, reveal=True, reason=form.get("reason", "").strip()[:500]
    )


# Notices a redirect may ask a message page to show (only these: a URL cannot inject text).
NOTICES = ("queued", "replaced")


@router.get("/audit")
async def audit_page(request: Request, services: ServicesDep, session: SessionDep) -> Response:
    """The audit log, newest first, paged (reading it is itself audited)."""
    number = page_number(request.query_params.get("page"))
    actor = (request.query_params.get("actor") or "").strip() or None
    entries = await run_in_threadpool(
        lambda: audit.audit_entries(
            services.engine, session.admin.name, actor=actor, limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE
        )
    )
    pages = max(1, -(-entries.total // PAGE_SIZE))
    return page(
        request,
        "audit.html",
        session,
        entries=[e.to_json() for e in entries.entries],
        total=entries.total,
        actor=actor or "",
        page_number=number,
        pages=pages,
    )
