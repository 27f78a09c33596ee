"""Senders (client systems, providers, admins): their secrets, authentication and scope."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from psop_hub.hub.database import already_exists, unavailable_on_outage
from psop_hub.hub.errors import AuthenticationFailed, InvalidInput, NotAllowed
from psop_hub.hub.tables import clients

ROLES = ("system", "provider", "admin")
SYSTEM_TYPES = frozenset(
    {
        "voucher.granted",
        "voucher.amended",
        "voucher.revoked",
        "voucher.assigned",
        "order.placed",
        "order.ended",
        "payment.confirmed",
        "provider.approved",
    }
)
PROVIDER_TYPES = frozenset(
    {"voucher.assigned", "delivery.reported", "delivery.corrected", "delivery.cancelled"}
)


@dataclass(frozen=True)
class Sender:
    """An authenticated caller and what it is scoped to."""

    name: str
    role: str
    organiser: str | None
    provider: str | None

    @property
    def is_admin(self) -> bool:
        """Admins search, inspect and replay; they do not send messages."""
        return self.role == "admin"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def add_client(engine: Engine, name: str, role: str, organiser: str | None, provider: str | None) -> str:
    """Register a sender and return its new secret (only its hash is stored); `AlreadyExists` if
    a client has that name."""
    if role not in ROLES:
        raise InvalidInput("role", f"role must be one of {', '.join(ROLES)}")
    if role == "system" and not organiser:
        raise InvalidInput("organiser", "a system client needs --organiser")
    if role == "provider" and not provider:
        raise InvalidInput("provider", "a provider client needs --provider")
    secret = secrets.token_urlsafe(32)
    taken = already_exists("pk_clients", reason=f"a client named {name!r} exists already")
    with unavailable_on_outage(), taken, engine.begin() as conn:
        conn.execute(
            insert(clients).values(
                name=name,
                role=role,
                organiser=organiser,
                provider=provider,
                secret_sha256=_digest(secret),
            )
        )
    return secret


def by_name(engine: Engine, name: str) -> Sender | None:
    """The enabled sender with this client name (the file drop's folder name), or None."""
    with unavailable_on_outage(), engine.connect() as conn:
        row = conn.execute(
            select(clients.c.name, clients.c.role, clients.c.organiser, clients.c.provider).where(
                clients.c.name == name, clients.c.disabled_at.is_(None)
            )
        ).one_or_none()
    return Sender(row.name, row.role, row.organiser, row.provider) if row else None


class Authenticator:
    """Looks senders up by secret; remembers answers briefly so each request costs no query."""

    def __init__(self, engine: Engine, ttl_s: float = 30.0) -> None:
        self.engine = engine
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, Sender | None]] = {}
        self._lock = threading.Lock()

    def by_secret(self, secret: str) -> Sender:
        """The sender holding this bearer secret, or `AuthenticationFailed`."""
        sender = self._lookup(_digest(secret))
        if sender is None:
            raise AuthenticationFailed("unknown or disabled credentials")
        return sender

    def cached(self, secret: str) -> Sender | None:
        """The sender for this secret if it is remembered and fresh; None means: look it up."""
        hit = self._cache.get(_digest(secret))
        if hit is not None and hit[0] > time.monotonic() and hit[1] is not None:
            return hit[1]
        return None

    def by_name_and_secret(self, name: str, secret: str) -> Sender:
        """The sender with this name and secret (SOAP UsernameToken, HTTP Basic)."""
        sender = self._lookup(_digest(secret))
        if sender is None or not hmac.compare_digest(sender.name.encode(), name.encode()):
            raise AuthenticationFailed("unknown or disabled credentials")
        return sender

    def _lookup(self, digest: str) -> Sender | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        with unavailable_on_outage(), self.engine.connect() as conn:
            row = conn.execute(
                select(clients.c.name, clients.c.role, clients.c.organiser, clients.c.provider).where(
                    clients.c.secret_sha256 == digest, clients.c.disabled_at.is_(None)
                )
            ).one_or_none()
        sender = Sender(row.name, row.role, row.organiser, row.provider) if row else None
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            # Unknown secrets are remembered only briefly, so a new client works at once.
            self._cache[digest] = (now + (self.ttl_s if sender else 2.0), sender)
        return sender


def check_may_send(sender: Sender, message_type: str, organiser: str | None, provider: str | None) -> None:
    """Raise `NotAllowed` unless the sender may send this message for this organiser or provider."""
    if sender.is_admin:
        raise NotAllowed("admins replay messages; they do not send them")
    if sender.role == "system":
        if message_type not in SYSTEM_TYPES:
            raise NotAllowed(f"a client system may not send {message_type}")
        if organiser is not None and organiser != sender.organiser:
            raise NotAllowed(f"this client may only send messages for organiser {sender.organiser}")
        return
    if message_type not in PROVIDER_TYPES:
        raise NotAllowed(f"a provider may not send {message_type}")
    if provider != sender.provider:
        raise NotAllowed(f"this client may only send messages as provider {sender.provider}")


# --- who may read what (INTERFACES §3) -----------------------------------------------------------
# A record the caller may not read is answered exactly like a missing one: its existence is not
# theirs to know. Every read route and GetMessageStatus decides with these two functions.


def may_read_message(sender: Sender, message_sender: str) -> bool:
    """A message, its status and journey: its own sender and admins."""
    return sender.is_admin or message_sender == sender.name


def may_read(sender: Sender, organiser: str | None, provider: str | None) -> bool:
    """A voucher, order, settlement or approval of `organiser` with `provider`: the organiser's
    systems, that provider, and admins."""
    if sender.is_admin:
        return True
    if sender.role == "system":
        return organiser is not None and sender.organiser == organiser
    return provider is not None and sender.provider == provider


def may_manage_party(sender: Sender, business_id: str) -> bool:
    """A party's invoicing details (read and set): admins for anyone, a provider for itself, an
    organiser's systems for their organiser. Decided on the business ID alone, before any read,
    so a refusal tells nothing about whether details are stored."""
    if sender.is_admin:
        return True
    if sender.role == "system":
        return sender.organiser is not None and sender.organiser == business_id
    return sender.role == "provider" and sender.provider is not None and sender.provider == business_id
