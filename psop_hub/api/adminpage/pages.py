"""The admin page's own routes: sign-in, sign-out and the start page."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from psop_hub.api.adminpage import auth
from psop_hub.api.adminpage.render import page
from psop_hub.api.adminpage.routing import PageRoute
from psop_hub.api.deps import ServicesDep
from psop_hub.hub import admin_sessions
from psop_hub.hub.admin_sessions import AdminSession
from psop_hub.hub.errors import AuthenticationFailed

router = APIRouter(prefix="/admin", route_class=PageRoute, include_in_schema=False)
SessionDep = Annotated[AdminSession, Depends(auth.current_session)]
# A refused sign-in waits this long before answering: online guessing gets slow, the server not.
REFUSAL_DELAY_S = 0.5


def safe_next(target: str | None) -> str:
    """Where to go after signing in: only a path of this page, never another site."""
    if target and target.startswith("/admin/") and "\\" not in target and "//" not in target:
        return target
    return "/admin/messages"


@router.get("")
@router.get("/")
async def start(session: SessionDep) -> Response:
    """The start page is the message search."""
    return RedirectResponse("/admin/messages", status_code=303)


def _sign_in_page(
    request: Request, services: ServicesDep, target: str, status_code: int = 200, refused: bool = False
) -> Response:
    token = auth.sign_in_token(request)
    response = page(
        request,
        "sign_in.html",
        None,
        status_code=status_code,
        next=target,
        refused=refused,
        signed_out=request.query_params.get("signed_out") == "1",
        expired=request.query_params.get("expired") == "1",
        sign_in_token=token,
    )
    auth.set_sign_in_cookie(response, request, services.settings, token)
    return response


@router.get("/sign-in")
async def sign_in_form(request: Request, services: ServicesDep) -> Response:
    """The sign-in form."""
    return _sign_in_page(request, services, safe_next(request.query_params.get("next")))


@router.post("/sign-in")
async def sign_in(request: Request, services: ServicesDep) -> Response:
    """Check an admin client's name and secret; on success open a session and go on."""
    form = await auth.form_of(request)
    auth.check_sign_in_token(request, form)
    target = safe_next(form.get("next"))
    settings = services.settings
    try:
        token, _ = await run_in_threadpool(
            admin_sessions.sign_in,
            services.engine,
            services.authenticator,
            form.get("name", "").strip(),
            form.get("secret", "").strip(),
        )
    except AuthenticationFailed:
        await asyncio.sleep(REFUSAL_DELAY_S)
        return _sign_in_page(request, services, target, 401, refused=True)
    await run_in_threadpool(
        admin_sessions.purge_expired,
        services.engine,
        settings.admin_session_minutes,
        settings.admin_session_max_minutes,
    )
    response = RedirectResponse(target, status_code=303)
    auth.set_session_cookie(response, request, settings, token)
    response.delete_cookie(auth.SIGN_IN_COOKIE, path="/admin")
    return response


@router.post("/sign-out")
async def sign_out(request: Request, services: ServicesDep, session: SessionDep) -> Response:
    """End the session (its row is deleted: no replica accepts the cookie again)."""
    await auth.checked_form(request, session)
    await run_in_threadpool(admin_sessions.end_session, services.engine, request.cookies[auth.SESSION_COOKIE])
    response = RedirectResponse("/admin/sign-in?signed_out=1", status_code=303)
    auth.clear_session_cookie(response, request, services.settings)
    return response
