"""The admin page's session cookie, sign-in form token and CSRF checks.

The session cookie holds a random token whose digest names a row in PostgreSQL
(`hub/admin_sessions.py`); it is HttpOnly, SameSite=Strict, limited to /admin, Secure on HTTPS
(setting `HUB_ADMIN_COOKIE_SECURE`), and expires with the idle limit. Every POST carries the
session's CSRF token in a hidden field; the sign-in form, which has no session yet, carries a
token that must equal the one in a short-lived cookie set with the form (double submit).
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from psop_hub.api.accesslog import note_sender
from psop_hub.api.deps import read_body, services_of
from psop_hub.hub.admin_sessions import AdminSession, csrf_matches, session_of
from psop_hub.hub.errors import Unreadable
from psop_hub.hub.settings import Settings

SESSION_COOKIE = "psop_admin_session"
SIGN_IN_COOKIE = "psop_admin_sign_in"
CSRF_FIELD = "csrf_token"
MAX_FIELDS = 100


class SignInRequired(Exception):
    """No live session: the page answers with a redirect to the sign-in form."""


class CsrfRefused(Exception):
    """A POST without this session's CSRF token: refused, nothing done."""


def secure_cookies(request: Request, settings: Settings) -> bool:
    """Whether cookies get the Secure flag on this request."""
    if settings.admin_cookie_secure != "auto":
        return settings.admin_cookie_secure == "always"
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def set_session_cookie(response: Response, request: Request, settings: Settings, token: str) -> None:
    """Give the browser its session cookie (it expires with the idle limit)."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.admin_session_minutes * 60,
        path="/admin",
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request, settings),
    )


def clear_session_cookie(response: Response, request: Request, settings: Settings) -> None:
    """Remove the session cookie from the browser."""
    response.delete_cookie(
        SESSION_COOKIE,
        path="/admin",
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request, settings),
    )


def sign_in_token(request: Request) -> str:
    """The sign-in form's token: the one in the browser's cookie, or a new one."""
    token = request.cookies.get(SIGN_IN_COOKIE) or ""
    return token if len(token) >= 32 else secrets.token_urlsafe(32)


def set_sign_in_cookie(response: Response, request: Request, settings: Settings, token: str) -> None:
    """Give the browser the sign-in form's token (for an hour, the form's lifetime)."""
    response.set_cookie(
        SIGN_IN_COOKIE,
        token,
        max_age=3600,
        path="/admin",
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request, settings),
    )


def check_sign_in_token(request: Request, form: dict[str, str]) -> None:
    """Refuse a sign-in whose form token is not the one in the cookie (login CSRF)."""
    cookie = request.cookies.get(SIGN_IN_COOKIE) or ""
    presented = form.get(CSRF_FIELD, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), presented.encode()):
        raise CsrfRefused


async def current_session(request: Request) -> AdminSession:
    """The live session of this request's cookie, or `SignInRequired`."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise SignInRequired
    services = services_of(request)
    settings = services.settings
    session = await run_in_threadpool(
        session_of, services.engine, token, settings.admin_session_minutes, settings.admin_session_max_minutes
    )
    if session is None:
        raise SignInRequired
    note_sender(request, session.admin.name)
    return session


async def form_of(request: Request) -> dict[str, str]:
    """An `application/x-www-form-urlencoded` body (bounded by HUB_MAX_BODY_BYTES) as a dict;
    a repeated field keeps its last value."""
    body = await read_body(request, services_of(request).settings.max_body_bytes)
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise Unreadable("the form is not UTF-8 form data") from exc
    return dict(pairs)


async def checked_form(request: Request, session: AdminSession) -> dict[str, str]:
    """The POSTed form, or `CsrfRefused` unless it carries this session's CSRF token."""
    form = await form_of(request)
    if not csrf_matches(session, form.get(CSRF_FIELD)):
        raise CsrfRefused
    return form
