"""/docs (Swagger UI) and /redoc (ReDoc) load nothing from outside the hub.

The assets come from the `fastapi-offline` package (see `app.py`). ReDoc's bundle still shows a
"by Redocly" logo from its vendor's CDN, and either bundle could grow another such reference in a
later version: the pages are therefore sent with a Content-Security-Policy that lets the browser
fetch only from the hub (inline script and style stay allowed: both pages are built that way).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

DOC_PAGES = frozenset({"/docs", "/redoc"})
POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def install(app: FastAPI) -> None:
    """Send the documentation pages with a policy that keeps them to the hub."""

    @app.middleware("http")
    async def only_the_hub(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        if request.url.path in DOC_PAGES:
            response.headers["Content-Security-Policy"] = POLICY
        return response
