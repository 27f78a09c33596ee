"""`client_gone` (api/connection.py) on the hub's own HTTP protocol, over a real socket: False
while the client waits for its answer, True once it has closed the connection; and Starlette's
own check where the app runs under another server."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from psop_hub.api.connection import CLOSING, HubHttpProtocol, client_gone

checked = threading.Event()  # the endpoint has looked once: the client may close now
seen: list[tuple[bool, bool]] = []


async def endpoint(request: Request) -> PlainTextResponse:
    await request.body()
    first = await client_gone(request)
    if "wait" not in request.query_params:
        return PlainTextResponse(f"{first} {CLOSING in request.scope.get('extensions', {})}")
    checked.set()
    deadline = time.monotonic() + 10
    while not await client_gone(request) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    seen.append((first, await client_gone(request)))
    return PlainTextResponse("nobody reads this")


APP = Starlette(routes=[Route("/", endpoint, methods=["POST"])])


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    config = uvicorn.Config(APP, host="127.0.0.1", port=0, http=HubHttpProtocol, log_config=None)
    served = uvicorn.Server(config)
    thread = threading.Thread(target=served.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not served.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    port = served.servers[0].sockets[0].getsockname()[1]
    yield "127.0.0.1", port
    served.should_exit = True
    thread.join(10)


def test_a_client_waiting_for_its_answer_has_not_gone(server: tuple[str, int]) -> None:
    host, port = server
    answer = httpx.post(f"http://{host}:{port}/", content=b"{}")
    assert answer.text == "False True"  # not gone, and asked through the protocol's extension


def test_a_client_that_closed_its_connection_has_gone(server: tuple[str, int]) -> None:
    host, port = server
    with socket.create_connection((host, port)) as client:
        client.sendall(b"POST /?wait=1 HTTP/1.1\r\nHost: hub\r\nContent-Length: 2\r\n\r\nab")
        assert checked.wait(10), "the endpoint never ran"
    deadline = time.monotonic() + 10
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen == [(False, True)]


def test_under_another_server_starlette_answers() -> None:
    # No extension in the scope (httpx drives the app through ASGI): Starlette's is_disconnected.
    async def post() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=APP), base_url="http://hub") as client:
            return await client.post("/", content=b"{}")

    assert asyncio.run(post()).text == "False False"
