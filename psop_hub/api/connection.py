"""The HTTP/1.1 connection the API serves: uvicorn's httptools protocol with the limits it lacks.

httptools (llhttp, in C) parses a request at a fraction of h11's cost, but uvicorn lets it read
request headers of any size, and neither parser times out a client that sends its headers
slowly. Here, on top of it:
- a request whose headers pass `max_header_bytes` is answered 431 problem+json, as soon as that
  many bytes of an unfinished head have arrived (not after the whole head is buffered), and any
  other unparsable request 400 problem+json;
- a connection that has not sent complete headers within `header_timeout_s` of its first byte
  (or of opening) is closed: a half-sent request cannot hold a connection for ever.
The body has its own deadline (`api.deps.read_body`).

Each request's scope also carries, as the extension `psop_hub.closing`, the connection's
`is_closing`: `client_gone` asks it whether the client has gone, where Starlette's
`Request.is_disconnected` opens and cancels a cancel scope around `receive` (~30 us a call).

How the head is measured: the bytes of every chunk that arrives while a request's head is
unfinished count, from the chunk after the one its first byte came in (that one may also carry
the end of the request before it); a head that completes is measured from its parsed request
line and headers. So nothing over the limit is buffered beyond one read of the socket.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["CLOSING", "HubHttpProtocol", "client_gone", "configure"]

CLOSING = "psop_hub.closing"

_header_timeout_s = 10.0
_max_header_bytes = 32_768


def configure(header_timeout_s: float, max_header_bytes: int) -> None:
    """Set, for this process, how long a client may take to send a request's headers and how
    large they may be."""
    global _header_timeout_s, _max_header_bytes
    _header_timeout_s = header_timeout_s
    _max_header_bytes = max_header_bytes


def _problem(status: int, title: str, detail: str) -> bytes:
    return json.dumps(
        {
            "type": "about:blank",
            "title": title,
            "status": status,
            "detail": detail,
            "errors": [],
            "error_count": 0,
        }
    ).encode()


class HeadersTooLarge(Exception):
    """Raised from the parser's callback: the head just completed is over the limit."""


class HubHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header size limit, a header deadline and problem+json
    answers to requests that cannot be parsed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_limit = _max_header_bytes
        self._header_deadline: asyncio.TimerHandle | None = None
        self._in_head = False  # a request's head has begun and is not complete yet
        self._head_began_now = False  # ... and it began in the chunk being fed
        self._head_bytes = 0  # bytes of that head counted so far
        self._too_large = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """A new connection: its first request's headers are due within the deadline."""
        super().connection_made(transport)
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection is gone: no deadline to keep."""
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the parser; count the bytes of an unfinished head; while one is unfinished, its
        deadline runs."""
        counted = self._in_head  # a head unfinished before this chunk: all of it is head so far
        self._head_began_now = False
        super().data_received(data)  # a parse error is answered by send_400_response below
        if self.transport.is_closing():
            self._disarm_header_deadline()
            return
        if not self._in_head:
            self._disarm_header_deadline()
            return
        if counted and not self._head_began_now:
            self._head_bytes += len(data)
            if self._head_bytes > self._header_limit:
                self._too_large = True
                self.send_400_response("")
                return
        self._arm_header_deadline()

    # Parser callbacks
    def on_message_begin(self) -> None:
        """A request's first byte: its head is counted from here."""
        super().on_message_begin()
        self._in_head, self._head_began_now, self._head_bytes = True, True, 0

    def on_headers_complete(self) -> None:
        """The head is complete: measured, and refused (431) when over the limit."""
        self._in_head = False
        size = len(self.url) + 16 + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self._header_limit:
            self._too_large = True
            raise HeadersTooLarge  # the parser stops; data_received answers with send_400_response
        extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
        extensions[CLOSING] = self.transport.is_closing
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        """Answer a request that cannot be parsed with problem+json: 431 when its headers were
        over the limit, 400 otherwise; then close (the rest of the stream is unreadable)."""
        self._disarm_header_deadline()
        if self._too_large:
            status, reason, title = 431, b"Request Header Fields Too Large", "Request header fields too large"
            detail = f"the request's headers are over the limit of {self._header_limit} bytes"
        else:
            status, reason, title = 400, b"Bad Request", "Bad request"
            detail = "the request is not valid HTTP/1.1"
        body = _problem(status, title, detail)
        head = (
            b"HTTP/1.1 %d %s\r\ncontent-type: application/problem+json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n" % (status, reason, len(body))
        )
        self.transport.write(head + body)
        self.transport.close()

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(_header_timeout_s, self._headers_overdue)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_overdue(self) -> None:
        self._header_deadline = None
        # Armed only while no request's head is complete: no request of this connection runs.
        running = self.cycle is not None and not self.cycle.response_complete
        if not self.transport.is_closing() and not running:
            self.logger.debug("closing a connection that sent no complete request headers in time")
            self.transport.close()


async def client_gone(request: Request) -> bool:
    """Whether the client of this request has closed its connection, without waiting."""
    closing = request.scope.get("extensions", {}).get(CLOSING)
    if closing is None:  # another ASGI server, or a test calling the app directly
        return await request.is_disconnected()
    return bool(closing())
