"""The admin page's route class: what a page raises becomes an HTML answer, not problem+json.

No session: a redirect to the sign-in form (303, so that a POST is not repeated). A wrong CSRF
token: 403 with a page that says so. Hub errors: the page for their status.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute

from psop_hub.api.adminpage.auth import CsrfRefused, SignInRequired
from psop_hub.api.adminpage.render import page
from psop_hub.hub.errors import (
    AuthenticationFailed,
    HubError,
    NotAllowed,
    NotFound,
    PermanentError,
    TransientError,
)
from psop_hub.hub.privacy import mask_text

log = logging.getLogger(__name__)


def sign_in_redirect(request: Request) -> RedirectResponse:
    """To the sign-in form, coming back to this page (a GET) afterwards."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    back = f"?next={quote(target, safe='')}" if request.method == "GET" else "?expired=1"
    return RedirectResponse(f"/admin/sign-in{back}", status_code=303)


def error_page(request: Request, exc: HubError) -> Response:
    """A hub error as an HTML page with its status."""
    if isinstance(exc, NotFound):
        status, title = 404, "Not found"
    elif isinstance(exc, NotAllowed | AuthenticationFailed):
        status, title = 403, "Refused"
    elif isinstance(exc, TransientError):
        log.warning("admin page answering 503: %s", exc)
        message = "The hub cannot answer right now; try again in a moment."
        return page(
            request, "error.html", None, status_code=503, title="Something went wrong", message=message
        )
    elif isinstance(exc, PermanentError):
        status, title = 422, "Invalid input"
    else:
        status, title = 500, "Something went wrong"
    errors = exc.errors if isinstance(exc, PermanentError) else []
    return page(
        request,
        "error.html",
        None,
        status_code=status,
        title=title,
        detail=mask_text(str(exc)),
        errors=errors,
    )


def refused_page(request: Request) -> Response:
    """403: the form's CSRF token was missing or wrong."""
    message = (
        "The form's security token is missing or wrong: nothing was done. Reload the page and try again."
    )
    return page(request, "error.html", None, status_code=403, title="Refused", message=message)


class PageRoute(APIRoute):
    """An APIRoute whose errors are answered as admin pages."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The route's handler, wrapped to turn sign-in, CSRF and hub errors into pages."""
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                return sign_in_redirect(request)
            except CsrfRefused:
                return refused_page(request)
            except HubError as exc:
                return error_page(request, exc)

        return answer
