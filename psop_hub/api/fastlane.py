"""The two routes every message comes through, called without FastAPI's router.

`POST /api/v1/messages` and `POST /soap/v1` take the request and nothing else (no parameters,
no dependencies, no body model): they read and judge the body themselves. FastAPI still knows
them (the OpenAPI document, the same functions), but on the way to them its router matched each
request against the included routers twice, and ran a dependency solver, an exit stack and an
exception wrapper around an endpoint that needs none of them: a fifth of the API's CPU for a
usual message was framework work (bench/profile.py).

`FastLane` is the innermost of the hub's own middleware, inside the access log, the page
headers and `ProblemOnCrash`: for these two routes it calls the endpoint itself and answers an
exception as the application's exception handlers do (the same problem documents, found by the
exception's class as Starlette finds them); every other request goes on to the router.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]


def plain_endpoint(endpoint: Endpoint) -> Endpoint:
    """The endpoint itself, if FastAPI would call it with the request alone; TypeError otherwise
    (a parameter or dependency added to it later must not be skipped here without a word)."""
    parameters = list(inspect.signature(endpoint, eval_str=True).parameters.values())
    if not inspect.iscoroutinefunction(endpoint) or [p.annotation for p in parameters] != [Request]:
        raise TypeError(f"{endpoint.__qualname__} takes more than the request: it cannot be on the fast lane")
    return endpoint


class FastLane:
    """ASGI middleware: the routes in `routes` ((method, path) to endpoint) answered directly."""

    def __init__(
        self,
        app: ASGIApp,
        routes: Mapping[tuple[str, str], Endpoint],
        handlers: Mapping[Any, Callable[[Request, Exception], Any]],
    ) -> None:
        self.app = app
        self.routes = {key: plain_endpoint(endpoint) for key, endpoint in routes.items()}
        # The application's own mapping: handlers registered after this middleware count too.
        self.handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = None
        if scope["type"] == "http":
            endpoint = self.routes.get((scope.get("method", ""), _route_path(scope)))
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except Exception as exc:
            handler = self._handler_for(exc)
            if handler is None:
                raise  # ProblemOnCrash logs it and answers 500, as for any route
            if inspect.iscoroutinefunction(handler):
                response = await handler(request, exc)
            else:  # as Starlette runs a plain function handler: off the loop
                response = await run_in_threadpool(handler, request, exc)
        await response(scope, receive, send)

    def _handler_for(self, exc: Exception) -> Callable[[Request, Exception], Any] | None:
        # As Starlette's ExceptionMiddleware looks: an HTTPException's status code first, then
        # the class and its bases; a handler for 500 or Exception is the outermost middleware's.
        if isinstance(exc, HTTPException) and exc.status_code != 500 and exc.status_code in self.handlers:
            return self.handlers[exc.status_code]
        for cls in type(exc).__mro__:
            if cls is not Exception and cls in self.handlers:
                return self.handlers[cls]
        return None


def _route_path(scope: Scope) -> str:
    """The path the router matches: without the root path the server was told it is mounted at
    (as Starlette's router takes it off: only a whole leading segment)."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :]
    return path
