"""The HTTP/1.1 connection the API serves: uvicorn's h11 protocol with the limits it lacks.

uvicorn's default parser (httptools) reads request headers of any size, and neither parser times
out a client that sends its headers slowly. Here, on top of h11:
- a request whose headers pass `h11_max_incomplete_event_size` bytes is answered 431 problem+json
  (h11 alone answers a text/plain 400), any other unparsable request 400 problem+json;
- a connection that has not sent complete headers within `header_timeout_s` of its first byte
  (or of opening) is closed: a half-sent request cannot hold a connection for ever.
The body has its own deadline (`api.deps.read_body`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["HubH11Protocol", "configure"]

_header_timeout_s = 10.0


def configure(header_timeout_s: float) -> None:
    """Set, for this process, how long a client may take to send a request's headers."""
    global _header_timeout_s
    _header_timeout_s = header_timeout_s


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


class HubH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header deadline and problem+json answers to bad requests."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_limit = self.conn._max_incomplete_event_size  # h11 keeps the limit there
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """A new connection: its first request's headers are due within the deadline."""
        super().connection_made(transport)
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection is gone: no deadline to keep."""
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed h11; while the headers of a request are incomplete, their deadline runs."""
        super().data_received(data)
        if self.transport.is_closing():
            self._disarm_header_deadline()
        elif self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]:
            self._arm_header_deadline()
        else:
            self._disarm_header_deadline()

    def send_400_response(self, msg: str) -> None:
        """Answer a request h11 could not parse with problem+json: 431 when its headers were
        over the limit, 400 otherwise; then close (the rest of the stream is unreadable)."""
        self._disarm_header_deadline()
        if len(self.conn.trailing_data[0]) > self._header_limit:
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
        # h11 is in its ERROR state and sends nothing more: write the answer directly.
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
        # IDLE: no request's headers are complete, so no request of this connection is running.
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self.logger.debug("closing a connection that sent no complete request headers in time")
            self.transport.close()
