"""Hub errors to HTTP: RFC 9457 problem documents with an `errors` list of `{field, message}`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from psop_hub.hub.errors import (
    AuthenticationFailed,
    ConflictError,
    FieldError,
    HubError,
    NotAllowed,
    NotFound,
    PermanentError,
    TransientError,
    ValidationFailed,
)

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"


class BodyTooLarge(HubError):
    """The request body is over the configured limit."""


class BadBody(HubError):
    """The request body is not JSON at all."""


def problem(
    status: int, title: str, detail: str, errors: list[FieldError] | None = None, **extra: Any
) -> JSONResponse:
    """A problem+json response."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "errors": [e.as_dict() for e in errors or []],
    }
    body.update(extra)
    headers = {"WWW-Authenticate": 'Bearer realm="psop-hub"'} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _status_of(exc: HubError) -> tuple[int, str]:
    if isinstance(exc, ValidationFailed):
        return 422, "Invalid message"
    if isinstance(exc, ConflictError):
        return 409, "Conflict"
    if isinstance(exc, NotAllowed):
        return 403, "Forbidden"
    if isinstance(exc, AuthenticationFailed):
        return 401, "Unauthorized"
    if isinstance(exc, NotFound):
        return 404, "Not found"
    if isinstance(exc, BodyTooLarge):
        return 413, "Body too large"
    if isinstance(exc, BadBody):
        return 400, "Bad request"
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
    return problem(exc.status_code, str(exc.detail), str(exc.detail))


def install(app: FastAPI) -> None:
    """Register the handlers that turn errors into problem documents."""
    app.add_exception_handler(HubError, _hub_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_error)
