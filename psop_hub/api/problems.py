"""Hub errors to HTTP: RFC 9457 problem documents with an `errors` list of `{field, message}`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from psop_hub.api.deps import BodyTimeout, BodyTooLarge, UnsupportedMediaType
from psop_hub.hub.errors import (
    AlreadyExists,
    AuthenticationFailed,
    ConflictError,
    FieldError,
    HubError,
    InvalidInput,
    NotAllowed,
    NotFound,
    PermanentError,
    TransientError,
    Unreadable,
    ValidationFailed,
)
from psop_hub.hub.groupcommit import Busy
from psop_hub.hub.privacy import mask_text
from psop_hub.hub.ratelimit import RateLimited

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"
# Most errors one answer lists; `error_count` says how many were found. A body of 10,000 unknown
# keys is answered with a short document, not one as large as itself.
MAX_ERRORS = 100


def problem(
    status: int,
    title: str,
    detail: str,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem+json response; every text in it passes the HETU masker (a HETU sent as a voucher
    number or a message id must not come back in a 404 or a 409)."""
    found = errors or []
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": mask_text(detail),
        "errors": [
            {"field": mask_text(e.field), "message": mask_text(e.message)} for e in found[:MAX_ERRORS]
        ],
        "error_count": len(found),
    }
    body.update({k: mask_text(v) if isinstance(v, str) else v for k, v in extra.items()})
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="psop-hub"'
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers or None)


def _status_of(exc: HubError) -> tuple[int, str]:
    if isinstance(exc, Unreadable):
        return 400, "Bad request"
    if isinstance(exc, InvalidInput):
        return 422, "Invalid input"
    if isinstance(exc, ValidationFailed):
        return 422, "Invalid message"
    if isinstance(exc, ConflictError | AlreadyExists):
        return 409, "Conflict"
    if isinstance(exc, NotAllowed):
        return 403, "Forbidden"
    if isinstance(exc, AuthenticationFailed):
        return 401, "Unauthorized"
    if isinstance(exc, NotFound):
        return 404, "Not found"
    if isinstance(exc, BodyTooLarge):
        return 413, "Body too large"
    if isinstance(exc, UnsupportedMediaType):
        return 415, "Unsupported media type"
    if isinstance(exc, BodyTimeout):
        return 408, "Request timeout"
    if isinstance(exc, RateLimited):
        return 429, "Too many requests"
    if isinstance(exc, TransientError):
        return 503, "Service unavailable"
    if isinstance(exc, PermanentError):
        return 422, "Unprocessable"
    return 500, "Internal error"


async def _hub_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HubError)
    status, title = _status_of(exc)
    errors = exc.errors if isinstance(exc, PermanentError) else []
    extra: dict[str, Any] = {}
    if isinstance(exc, ConflictError):
        extra["hub_id"] = exc.hub_id
    if isinstance(exc, RateLimited):
        return problem(status, title, str(exc), headers={"Retry-After": str(exc.retry_after_s)})
    if isinstance(exc, Busy):  # the intake's queue is full: a moment later it has room
        return problem(status, title, str(exc), headers={"Retry-After": "1"})
    if status == 503:
        log.warning("answering 503: %s", exc)
        return problem(status, title, "the hub cannot take the message durably right now; retry later")
    return problem(status, title, str(exc), errors, **extra)


async def _request_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        FieldError(".".join(str(p) for p in e.get("loc", ())[1:]) or "request", str(e.get("msg", "invalid")))
        for e in exc.errors()
    ]
    return problem(400, "Bad request", "the request's parameters are invalid", errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    # The router's 405 carries `Allow` (RFC 9110 requires it); keep every header it set.
    return problem(exc.status_code, str(exc.detail), str(exc.detail), headers=dict(exc.headers or {}))


class ProblemOnCrash:
    """ASGI middleware: an unexpected exception becomes a logged 500 problem+json answer.

    Starlette's own last resort answers `text/plain` and re-raises into the server; here the
    error is logged once (through the HETU filter) and the connection stays usable.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; answer 500 if it fails before a response has started."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except ClientDisconnect:
            # The client went away mid-body: nobody to answer, nothing wrong with the hub.
            log.debug("client disconnected during %s %s", scope.get("method"), scope.get("path"))
        except Exception:
            log.exception("unexpected error answering %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            answer = problem(500, "Internal error", "the hub could not answer this request; it is logged")
            await answer(scope, receive, send)


def install(app: FastAPI) -> None:
    """Register the handlers that turn errors into problem documents."""
    app.add_middleware(ProblemOnCrash)
    app.add_exception_handler(HubError, _hub_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_error)
