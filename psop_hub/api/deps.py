"""What every route depends on: the process's services, the authenticated sender, a bounded body."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.engine import Engine

from psop_hub.api.accesslog import note_sender
from psop_hub.hub.errors import AuthenticationFailed, HubError
from psop_hub.hub.groupcommit import GroupCommit
from psop_hub.hub.publishing import Dispatcher, Publisher, Relay
from psop_hub.hub.ratelimit import count_request
from psop_hub.hub.senders import Authenticator, Sender
from psop_hub.hub.settings import Settings
from psop_hub.mappings.jsontext import parse_json


@dataclass
class Services:
    """Everything the routes use, built once per process by the composition root."""

    settings: Settings
    publisher: Publisher
    dispatcher: Dispatcher
    authenticator: Authenticator
    relay: Relay
    intake: GroupCommit

    @property
    def engine(self) -> Engine:
        """The database engine (the publisher's: one per process)."""
        return self.publisher.engine

    def start(self) -> None:
        """Start the intake's committers and the background publishing threads."""
        self.intake.start()
        self.dispatcher.start()
        self.relay.start()

    def stop(self) -> None:
        """Store what the intake holds, stop publishing (what is in hand is published or left to
        the relay) and disconnect."""
        self.intake.stop()
        self.dispatcher.stop()
        self.relay.stop()
        self.publisher.broker.close()
        self.engine.dispose()


def services_of(request: Request) -> Services:
    """The services of the application serving this request."""
    services = request.app.state.services
    assert isinstance(services, Services)
    return services


async def _services(request: Request) -> Services:
    # A coroutine, so FastAPI calls it on the loop: a plain function dependency is run in the
    # thread pool, a hand-over to a thread and back on every request (~10 % of the API's CPU).
    return services_of(request)


class BodyTooLarge(HubError):
    """The request body is over the configured limit of `limit` bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the body is over the limit of {limit} bytes")
        self.limit = limit


class UnsupportedMediaType(HubError):
    """The body is not of a media type the route reads."""


class BodyTimeout(HubError):
    """The body did not arrive whole within the configured time."""


JSON_TYPES = "application/json (or a +json type)"


def is_json_media_type(content_type: str | None) -> bool:
    """Whether a Content-Type header names JSON: application/json or application/*+json, with
    any parameters (charset=utf-8)."""
    media = (content_type or "").partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def read_body(request: Request, limit: int, timeout_s: float | None = None) -> bytes:
    """The request body, refused with `BodyTooLarge` as soon as it is known to pass `limit` bytes
    (by its Content-Length, or while it streams in), and with `BodyTimeout` if it has not arrived
    whole within `timeout_s` (a slow body holds a connection and a task)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    if timeout_s is None:
        timeout_s = services_of(request).settings.body_timeout_s
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTimeout(f"the body did not arrive within {timeout_s:g} seconds") from None
    return b"".join(chunks)


async def read_json(request: Request, *, empty_allowed: bool = False) -> Any:
    """The request's JSON body, decoded strictly within the configured limits: 415 unless the
    Content-Type names JSON (an empty body needs none where `empty_allowed`; it is then None).
    The body is read (within its limit) before the type is judged, so that the connection is
    left ready for the next request and an oversized body is a 413 whatever its type."""
    settings = services_of(request).settings
    body = await read_body(request, settings.max_body_bytes)
    if empty_allowed and not body.strip():
        return None
    content_type = request.headers.get("content-type")
    if not is_json_media_type(content_type):
        raise UnsupportedMediaType(
            f"send the body as {JSON_TYPES}, not {content_type or 'without a Content-Type'}"
        )
    return parse_json(body, settings.max_json_depth)


async def authenticated(request: Request) -> Sender:
    """The sender behind `Authorization: Bearer <secret>` (looked up on every request: a revoked
    secret is refused at once)."""
    return await run_in_threadpool(_sender_counted, request, services_of(request), bearer_secret(request))


def bearer_secret(request: Request) -> str:
    """The secret of `Authorization: Bearer <secret>`; `AuthenticationFailed` without one."""
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise AuthenticationFailed("send Authorization: Bearer <secret>")
    return secret.strip()


def _sender_counted(request: Request, services: Services, secret: str) -> Sender:
    """The sender (named in the access log, a 429 too), its request counted against the rate
    limit: one trip to a request thread for both."""
    sender = services.authenticator.by_secret(secret)
    note_sender(request, sender.name)
    count_request(services.engine, sender.name, services.settings.rate_limit_per_minute)
    return sender


def lookup_key(*values: str) -> bool:
    """Whether path values can name a record at all: identifiers are 1-100 characters without
    control characters (INTERFACES §2), so anything else (a NUL byte, which the database driver
    refuses in text) is simply not found, as any unknown number."""
    return all(0 < len(v) <= 100 and v.isprintable() for v in values)


SenderDep = Annotated[Sender, Depends(authenticated)]
ServicesDep = Annotated[Services, Depends(_services)]
