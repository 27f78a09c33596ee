"""/docs (Swagger UI) and /redoc (ReDoc) load nothing from outside the hub.

The assets come from the `fastapi-offline` package (see `app.py`). ReDoc's bundle still shows a
"by Redocly" logo from its vendor's CDN, and either bundle could grow another such reference in a
later version: the pages are therefore sent with a Content-Security-Policy that lets the browser
fetch only from the hub (inline script and style stay allowed: both pages are built that way).
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DOC_PAGES = frozenset({"/docs", "/redoc"})
POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


class DocsPolicy:
    """ASGI middleware: the documentation pages get the policy header; every other request
    passes untouched. (Pure ASGI on purpose: Starlette's BaseHTTPMiddleware turns a client that
    vanishes mid-body into a "No response returned" traceback on every request.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Add the header to the start of a documentation page's response."""
        if scope["type"] != "http" or scope.get("path") not in DOC_PAGES:
            await self.app(scope, receive, send)
            return

        async def with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"content-security-policy"]
                message = {**message, "headers": [*headers, (b"content-security-policy", POLICY.encode())]}
            await send(message)

        await self.app(scope, receive, with_policy)


def install(app: FastAPI) -> None:
    """Send the documentation pages with a policy that keeps them to the hub."""
    app.add_middleware(DocsPolicy)
