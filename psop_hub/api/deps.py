"""What every route depends on: the process's services, the authenticated sender, a bounded body."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.engine import Engine

from psop_hub.hub.errors import AuthenticationFailed, HubError
from psop_hub.hub.publishing import Dispatcher, Publisher, Relay
from psop_hub.hub.senders import Authenticator, Sender
from psop_hub.hub.settings import Settings


@dataclass
class Services:
    """Everything the routes use, built once per process by the composition root."""

    settings: Settings
    publisher: Publisher
    dispatcher: Dispatcher
    authenticator: Authenticator
    relay: Relay

    @property
    def engine(self) -> Engine:
        """The database engine (the publisher's: one per process)."""
        return self.publisher.engine

    def start(self) -> None:
        """Start the background publishing threads."""
        self.dispatcher.start()
        self.relay.start()

    def stop(self) -> None:
        """Stop publishing (what is in hand is published or left to the relay) and disconnect."""
        self.dispatcher.stop()
        self.relay.stop()
        self.publisher.broker.close()
        self.engine.dispose()


def services_of(request: Request) -> Services:
    """The services of the application serving this request."""
    services = request.app.state.services
    assert isinstance(services, Services)
    return services


class BodyTooLarge(HubError):
    """The request body is over the configured limit of `limit` bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the body is over the limit of {limit} bytes")
        self.limit = limit


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with `BodyTooLarge` as soon as it is known to pass `limit` bytes
    (by its Content-Length, or while it streams in)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def authenticated(request: Request) -> Sender:
    """The sender behind `Authorization: Bearer <secret>` (a database look-up only on a cache miss)."""
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise AuthenticationFailed("send Authorization: Bearer <secret>")
    authenticator = services_of(request).authenticator
    cached = authenticator.cached(secret.strip())
    if cached is not None:
        return cached
    return await run_in_threadpool(authenticator.by_secret, secret.strip())


def lookup_key(*values: str) -> bool:
    """Whether path values can name a record at all: identifiers are 1-100 characters without
    control characters (INTERFACES §2), so anything else (a NUL byte, which the database driver
    refuses in text) is simply not found, as any unknown number."""
    return all(0 < len(v) <= 100 and v.isprintable() for v in values)


SenderDep = Annotated[Sender, Depends(authenticated)]
ServicesDep = Annotated[Services, Depends(services_of)]
