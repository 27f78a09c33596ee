"""Senders (client systems, providers, admins): their secrets, authentication and scope."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Engine

from psop_hub.hub.database import already_exists, unavailable_on_outage
from psop_hub.hub.errors import AuthenticationFailed, InvalidInput, NotAllowed, NotFound
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


@dataclass(frozen=True)
class ClientInfo:
    """What `hub clients list` shows of a client: never its secret nor the secret's hash."""

    name: str
    role: str
    organiser: str | None
    provider: str | None
    created_at: datetime
    revoked_at: datetime | None


def list_clients(engine: Engine) -> list[ClientInfo]:
    """Every client, by name, revoked ones included (with when)."""
    with unavailable_on_outage(), engine.connect() as conn:
        rows = conn.execute(
            select(
                clients.c.name,
                clients.c.role,
                clients.c.organiser,
                clients.c.provider,
                clients.c.created_at,
                clients.c.disabled_at,
            ).order_by(clients.c.name)
        ).all()
    return [ClientInfo(r.name, r.role, r.organiser, r.provider, r.created_at, r.disabled_at) for r in rows]


def revoke_client(engine: Engine, name: str) -> datetime:
    """Revoke a client: its secret is refused from this commit on, by every API replica, the
    file drop and the admin page (each checks the row on every request). Returns when it was
    revoked (the first time, if it already was); `NotFound` for an unknown name."""
    with unavailable_on_outage(), engine.begin() as conn:
        revoked = conn.execute(
            update(clients)
            .where(clients.c.name == name)
            .values(disabled_at=func.coalesce(clients.c.disabled_at, func.now()))
            .returning(clients.c.disabled_at)
        ).scalar_one_or_none()
    if revoked is None:
        raise NotFound(f"no client named {name!r}")
    return revoked


class Authenticator:
    """Looks senders up by secret, in the database on every request.

    No answer is cached: a cache would keep a revoked secret working on every replica until it
    expired. The look-up is one primary-key-sized index probe. The secret is compared as its
    SHA-256 digest inside PostgreSQL's index, so response timing can tell at most something about
    a hash of a 256-bit random value, which gives no way towards the secret itself.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def by_secret(self, secret: str) -> Sender:
        """The sender holding this bearer secret, or `AuthenticationFailed`."""
        sender = self._lookup(_digest(secret))
        if sender is None:
            raise AuthenticationFailed("unknown or disabled credentials")
        return sender

    def by_name_and_secret(self, name: str, secret: str) -> Sender:
        """The sender with this name and secret (SOAP UsernameToken, HTTP Basic)."""
        sender = self._lookup(_digest(secret))
        if sender is None or not hmac.compare_digest(sender.name.encode(), name.encode()):
            raise AuthenticationFailed("unknown or disabled credentials")
        return sender

    def _lookup(self, digest: str) -> Sender | None:
        with unavailable_on_outage(), self.engine.connect() as conn:
            row = conn.execute(
                select(clients.c.name, clients.c.role, clients.c.organiser, clients.c.provider).where(
                    clients.c.secret_sha256 == digest, clients.c.disabled_at.is_(None)
                )
            ).one_or_none()
        return Sender(row.name, row.role, row.organiser, row.provider) if row else None


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
