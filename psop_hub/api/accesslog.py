"""The optional access log (`HUB_ACCESS_LOG=true`): one line per HTTP request.

`GET /api/v1/messages?message_id=* 200 4.1 ms sender=county`: the method, the path with the
query's names but never its values (a sender's message_id or a search may hold a HETU), the
status, the time to the end of the answer and the authenticated sender. The path itself passes
the HETU masker too: a voucher number is the sender's to choose. uvicorn's own access log stays
off: it prints the query whole.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from psop_hub.hub.logs import ACCESS_LOGGER
from psop_hub.hub.privacy import mask_text

log = logging.getLogger(ACCESS_LOGGER)
SENDER_KEY = "hub_sender"
# The longest path and the most query names one line repeats (a hostile client chooses them).
MAX_PATH = 300
MAX_NAMES = 10


def note_sender(request: Request, name: str) -> None:
    """Remember who the request's sender is, for the access log line."""
    request.scope.setdefault("state", {})[SENDER_KEY] = name


def request_line(scope: Scope) -> str:
    """`METHOD /path?name=*`: the query's names only, the path masked and cut to MAX_PATH."""
    path = str(scope.get("path", ""))
    if len(path) > MAX_PATH:
        path = path[:MAX_PATH] + "…"
    query = scope.get("query_string", b"").decode("latin-1")
    names = list(dict.fromkeys(name for name, _ in parse_qsl(query, keep_blank_values=True)))
    shown = "&".join(f"{name[:40]}=*" for name in names[:MAX_NAMES])
    if len(names) > MAX_NAMES:
        shown += "&…"
    return mask_text(f"{scope.get('method', '-')} {path}{'?' + shown if shown else ''}")


class AccessLog:
    """ASGI middleware that logs each HTTP request once it is answered (or abandoned)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, noting the status; log the line when it is done."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: list[int] = []

        async def noted(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, noted)
        finally:
            state = scope.get("state") or {}
            sender = state.get(SENDER_KEY) if isinstance(state, dict) else None
            log.info(
                "%s %s %.1f ms sender=%s",
                request_line(scope),
                status[0] if status else "-",
                (time.perf_counter() - started) * 1000,
                mask_text(sender) if sender else "-",
            )
