"""FastLane on its own: which requests it takes, and how an endpoint's exception is answered."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from psop_hub.api.fastlane import FastLane


class Refused(ValueError):
    pass


async def endpoint(request: Request) -> Response:
    kind = request.headers.get("x-raise")
    if kind == "refused":
        raise Refused("no")
    if kind == "teapot":
        raise HTTPException(418)
    if kind == "gone":
        raise HTTPException(410)
    if kind == "crash":
        raise RuntimeError("boom")
    return PlainTextResponse("lane")


async def by_class(request: Request, exc: Exception) -> Response:
    return PlainTextResponse(f"class {type(exc).__name__}", status_code=422)


def by_status(request: Request, exc: Exception) -> Response:  # a plain function handler too
    return PlainTextResponse("status 418", status_code=418)


async def inner(scope: Any, receive: Any, send: Any) -> None:
    await PlainTextResponse("router")(scope, receive, send)


LANE = FastLane(
    inner,
    routes={("POST", "/api/v1/messages"): endpoint},
    handlers={ValueError: by_class, 418: by_status, HTTPException: by_class, Exception: by_class},
)


def call(
    method: str, path: str, headers: dict[str, str] | None = None, root_path: str = ""
) -> tuple[int, str]:
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": root_path,
        "query_string": b"",
        "headers": [(k.encode(), v.encode()) for k, v in (headers or {}).items()],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(LANE(scope, receive, send))
    return sent[0]["status"], sent[1]["body"].decode()


def test_only_the_lanes_method_and_path_are_taken() -> None:
    assert call("POST", "/api/v1/messages") == (200, "lane")
    assert call("GET", "/api/v1/messages") == (200, "router")
    assert call("POST", "/api/v1/messages/") == (200, "router")
    assert call("POST", "/api/v1/other") == (200, "router")


def test_the_root_path_is_taken_off_as_the_router_does() -> None:
    assert call("POST", "/hub/api/v1/messages", root_path="/hub") == (200, "lane")
    assert call("POST", "/hubx/api/v1/messages", root_path="/hub") == (200, "router")


def test_an_exception_gets_its_handler_by_status_code_then_by_class() -> None:
    assert call("POST", "/api/v1/messages", {"x-raise": "refused"}) == (422, "class Refused")
    assert call("POST", "/api/v1/messages", {"x-raise": "teapot"}) == (418, "status 418")
    assert call("POST", "/api/v1/messages", {"x-raise": "gone"}) == (422, "class HTTPException")


def test_an_exception_without_a_handler_goes_on_to_the_middleware_outside() -> None:
    # A handler for Exception is the outermost middleware's (Starlette's ServerErrorMiddleware).
    with pytest.raises(RuntimeError, match="boom"):
        call("POST", "/api/v1/messages", {"x-raise": "crash"})
