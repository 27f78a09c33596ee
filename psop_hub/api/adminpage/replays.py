"""The replay pages: replay one message, edit and replay a copy (checked before it is sent, every
error shown next to the form), and the settlements whose invoice waits for details. The work is
done by the core (`hub.replay`, `adapters.replays`, `hub.settlement_views`), which audits it."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from psop_hub.adapters.replays import replay_edited
from psop_hub.api.adminpage import auth
from psop_hub.api.adminpage.messages import REPLAYABLE, hub_id_of, message_page_response
from psop_hub.api.adminpage.render import page
from psop_hub.api.adminpage.routing import PageRoute
from psop_hub.api.deps import ServicesDep
from psop_hub.hub import replay, search
from psop_hub.hub.admin_sessions import AdminSession
from psop_hub.hub.errors import ConflictError, FieldError, InvalidInput, NotAllowed, ValidationFailed
from psop_hub.hub.settlement_views import settlements_waiting_for_details
from psop_hub.mappings.jsontext import parse_json

router = APIRouter(prefix="/admin", route_class=PageRoute, include_in_schema=False)
SessionDep = Annotated[AdminSession, Depends(auth.current_session)]
EDIT_READ_REASON = "edit and replay"
MAX_REASON = 1000


def _reason(form: dict[str, str]) -> str:
    reason = form.get("reason", "").strip()
    if len(reason) > MAX_REASON:
        raise InvalidInput("reason", f"a reason has at most {MAX_REASON} characters")
    return reason


@router.post("/messages/{hub_id}/replay")
async def replay_one(request: Request, services: ServicesDep, session: SessionDep, hub_id: str) -> Response:
    """Replay one failed or rejected message; one that is not (applied since) is left alone and
    the page says why."""
    form = await auth.checked_form(request, session)
    key = hub_id_of(hub_id)
    result = await run_in_threadpool(
        replay.replay_message, services.engine, session.admin.name, key, _reason(form), services.publisher
    )
    if result.outcome == "queued":
        return RedirectResponse(f"/admin/messages/{key}?notice=queued", status_code=303)
    return await message_page_response(
        request, services, session, hub_id, status_code=409, refusal=result.detail
    )


def _edit_form(
    request: Request,
    session: AdminSession,
    message: dict[str, Any],
    text: str,
    reason: str,
    errors: list[FieldError],
    status_code: int = 200,
) -> Response:
    return page(
        request,
        "edit.html",
        session,
        status_code=status_code,
        message=message,
        payload_text=text,
        reason=reason,
        form_errors=errors,
    )


@router.get("/messages/{hub_id}/edit")
async def edit_form(request: Request, services: ServicesDep, session: SessionDep, hub_id: str) -> Response:
    """The edit form: the payload as JSON, HETUs shown (an edit must keep them), so the read is
    audited as revealed."""
    key = hub_id_of(hub_id)
    detail = await run_in_threadpool(
        lambda: search.show_message(
            services.engine, session.admin.name, key, reveal=True, reason=EDIT_READ_REASON
        )
    )
    shown = detail.to_json()
    if shown["status"] not in REPLAYABLE:
        return await message_page_response(
            request, services, session, hub_id, status_code=409, refusal=replay.skip_reason(shown["status"])
        )
    text = json.dumps(shown["payload"], indent=2, ensure_ascii=False)
    return _edit_form(request, session, shown, text, "", [])


def _payload_of(text: str, max_bytes: int, max_depth: int) -> Any:
    """The form's JSON text as a value, or `ValidationFailed` on the `payload` field."""
    data = text.encode("utf-8")
    if len(data) > max_bytes:
        raise InvalidInput("payload", f"the payload is over the limit of {max_bytes} bytes")
    try:
        return parse_json(data, max_depth)
    except ValidationFailed as exc:
        raise ValidationFailed([FieldError("payload", e.message) for e in exc.errors]) from None


@router.post("/messages/{hub_id}/edit")
async def edit_and_replay(
    request: Request, services: ServicesDep, session: SessionDep, hub_id: str
) -> Response:
    """Check the edited payload like any new message and replay it as a copy; an invalid edit is
    shown again with every error next to the form, and nothing is sent."""
    form = await auth.checked_form(request, session)
    key = hub_id_of(hub_id)
    text = form.get("payload", "")
    settings = services.settings
    try:
        reason = _reason(form)
        payload = _payload_of(text, settings.max_body_bytes, settings.max_json_depth)
        result = await run_in_threadpool(
            replay_edited, services.engine, session.admin.name, key, payload, reason, services.publisher
        )
    except (ValidationFailed, NotAllowed, ConflictError) as exc:
        errors = exc.errors or [FieldError("", str(exc))]
        detail = await run_in_threadpool(
            lambda: search.show_message(services.engine, session.admin.name, key, reason=EDIT_READ_REASON)
        )
        return _edit_form(
            request, session, detail.to_json(), text, form.get("reason", ""), errors, status_code=422
        )
    return RedirectResponse(f"/admin/messages/{result.copy_hub_id}?notice=replaced", status_code=303)


@router.get("/settlements/waiting")
async def settlements_waiting(request: Request, services: ServicesDep, session: SessionDep) -> Response:
    """Settlements whose Finvoice invoice waits for the provider's or organiser's details."""
    waiting = await run_in_threadpool(settlements_waiting_for_details, services.engine)
    return page(request, "settlements.html", session, waiting=[w.as_dict() for w in waiting])
