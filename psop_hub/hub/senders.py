"""Senders (client systems, providers, admins): their secrets, authentication and scope."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from psop_hub.hub.database import already_exists, raw, unavailable_on_outage
from psop_hub.hub.errors import AuthenticationFailed, InvalidInput, NotAllowed, NotFound
from psop_hub.hub.tables import client_secrets, clients

log = logging.getLogger(__name__)

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
    """An authenticated caller and what it is scoped to: a `system` client acts for one or more
    organisers (`organisers`, empty for the other roles), a `provider` as one business ID."""

    name: str
    role: str
    organisers: tuple[str, ...]
    provider: str | None

    def __post_init__(self) -> None:
        if isinstance(self.organisers, str):  # one business ID is not a sequence of them
            raise TypeError("Sender.organisers is a tuple of business IDs, not one string")
        object.__setattr__(self, "organisers", tuple(self.organisers or ()))

    @property
    def is_admin(self) -> bool:
        """Admins search, inspect and replay; they do not send messages."""
        return self.role == "admin"

    def acts_for(self, organiser: str | None) -> bool:
        """Whether this is a `system` client of `organiser`."""
        return self.role == "system" and organiser is not None and organiser in self.organisers

    @property
    def sole_organiser(self) -> str | None:
        """The organiser of a system client that acts for exactly one, else None."""
        return self.organisers[0] if self.role == "system" and len(self.organisers) == 1 else None


def organisers_of(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """Business IDs as a client's `organisers`: one or many, in order, each once."""
    if value is None:
        return ()
    given = (value,) if isinstance(value, str) else tuple(value)
    return tuple(dict.fromkeys(given))


def organisers_text(organisers: Iterable[str]) -> str:
    """`A` or `A, B` (for messages and listings)."""
    return ", ".join(organisers)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# A secret's lifetime when none is given (HUB_SECRET_LIFETIME is the operator's setting).
DEFAULT_LIFETIME = timedelta(days=365)
DEFAULT_WARNING = timedelta(days=30)
# How often one API process logs the WARNING about one secret that is about to expire.
WARN_EVERY_S = 3600.0
EXPIRED = "the secret has expired: ask the hub's operator for a new one"
UNKNOWN = "unknown or disabled credentials"


class SecretExpired(AuthenticationFailed):
    """The secret is a client's, and has expired: its lifetime, or a rotation's grace period, is
    over. Said only to a caller that presented the secret itself (and, for SOAP, its client's
    name), so it tells nothing about other secrets."""

    def __init__(self) -> None:
        super().__init__(EXPIRED)


def _seconds(span: timedelta) -> ColumnElement[Any]:
    """An SQL interval of this many seconds."""
    return func.make_interval(0, 0, 0, 0, 0, 0, span.total_seconds())


def new_secret() -> str:
    """A fresh client secret: 32 random bytes (256 bits), URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Issued:
    """A new secret, shown once; only its hash is stored."""

    secret: str
    expires_at: datetime
    # Rotation: when the client's previous secret stops working (None: it had none that worked).
    previous_until: datetime | None = None


def issue_client(
    engine: Engine,
    name: str,
    role: str,
    organisers: str | Iterable[str] | None,
    provider: str | None,
    lifetime: timedelta = DEFAULT_LIFETIME,
) -> Issued:
    """Register a sender with a new secret that works for `lifetime`; `AlreadyExists` if a client
    has that name. A `system` client acts for one or more organisers (a business ID or several),
    a `provider` as one business ID; an admin has neither."""
    if role not in ROLES:
        raise InvalidInput("role", f"role must be one of {', '.join(ROLES)}")
    acts_for = organisers_of(organisers)
    if role == "system" and not acts_for:
        raise InvalidInput("organiser", "a system client needs --organiser (one or more)")
    if role != "system" and acts_for:
        raise InvalidInput("organiser", f"only a system client acts for organisers, not a {role} client")
    if role == "provider" and not provider:
        raise InvalidInput("provider", "a provider client needs --provider")
    if role != "provider" and provider:
        raise InvalidInput("provider", f"only a provider client acts as a provider, not a {role} client")
    secret = new_secret()
    taken = already_exists("pk_clients", reason=f"a client named {name!r} exists already")
    with unavailable_on_outage(), taken, engine.begin() as conn:
        conn.execute(
            insert(clients).values(name=name, role=role, organisers=list(acts_for), provider=provider)
        )
        expires = conn.execute(
            insert(client_secrets)
            .values(secret_sha256=_digest(secret), client=name, expires_at=func.now() + _seconds(lifetime))
            .returning(client_secrets.c.expires_at)
        ).scalar_one()
    return Issued(secret, expires)


def add_client(
    engine: Engine,
    name: str,
    role: str,
    organisers: str | Iterable[str] | None,
    provider: str | None,
    lifetime: timedelta = DEFAULT_LIFETIME,
) -> str:
    """Register a sender and return its new secret (only its hash is stored)."""
    return issue_client(engine, name, role, organisers, provider, lifetime).secret


def rotate_client(
    engine: Engine, name: str, grace: timedelta, lifetime: timedelta = DEFAULT_LIFETIME
) -> Issued:
    """Give a client a new secret that works for `lifetime`. Its secrets that still work keep
    working for `grace` from now (never longer than they would have anyway), then are refused;
    a grace of 0 refuses them at once. Effective on every replica at once: every request reads
    the secrets' rows. `NotFound` for an unknown client, `InvalidInput` for a revoked one."""
    if grace.total_seconds() < 0:
        raise InvalidInput("grace", "the grace period must not be negative")
    secret = new_secret()
    with unavailable_on_outage(), engine.begin() as conn:
        # Locked: two rotations of one client at once are done one after the other.
        client = conn.execute(
            select(clients.c.disabled_at).where(clients.c.name == name).with_for_update()
        ).one_or_none()
        if client is None:
            raise NotFound(f"no client named {name!r}")
        if client.disabled_at is not None:
            raise InvalidInput("name", f"client {name!r} is revoked: add a new client instead")
        ends = (
            conn.execute(
                update(client_secrets)
                .where(client_secrets.c.client == name, client_secrets.c.expires_at > func.now())
                .values(
                    expires_at=func.least(client_secrets.c.expires_at, func.now() + _seconds(grace)),
                    replaced_at=func.coalesce(client_secrets.c.replaced_at, func.now()),
                )
                .returning(client_secrets.c.expires_at)
            )
            .scalars()
            .all()
        )
        expires = conn.execute(
            insert(client_secrets)
            .values(secret_sha256=_digest(secret), client=name, expires_at=func.now() + _seconds(lifetime))
            .returning(client_secrets.c.expires_at)
        ).scalar_one()
    return Issued(secret, expires, max(ends) if ends else None)


def by_name(engine: Engine, name: str) -> Sender | None:
    """The enabled sender with this client name (the file drop's folder name), or None."""
    with unavailable_on_outage(), engine.connect() as conn:
        row = conn.execute(
            select(clients.c.name, clients.c.role, clients.c.organisers, clients.c.provider).where(
                clients.c.name == name, clients.c.disabled_at.is_(None)
            )
        ).one_or_none()
    return Sender(row.name, row.role, tuple(row.organisers), row.provider) if row else None


@dataclass(frozen=True)
class ClientInfo:
    """What `hub clients list` shows of a client: never its secret nor the secret's hash."""

    name: str
    role: str
    organisers: tuple[str, ...]
    provider: str | None
    created_at: datetime
    revoked_at: datetime | None
    # When the current secret expires; while a rotation's grace period runs, until when the
    # replaced secret still works (else None).
    expires_at: datetime | None = None
    previous_until: datetime | None = None
    expired: bool = False


def _current_secrets() -> Any:
    """Per client: the current secret's expiry, and the end of a replaced one still working."""
    s = client_secrets.c
    return (
        select(
            s.client,
            func.max(case((s.replaced_at.is_(None), s.expires_at))).label("expires_at"),
            func.max(case(((s.replaced_at.is_not(None)) & (s.expires_at > func.now()), s.expires_at))).label(
                "previous_until"
            ),
        )
        .group_by(s.client)
        .subquery()
    )


def list_clients(engine: Engine) -> list[ClientInfo]:
    """Every client, by name, revoked ones included (with when), with its secret's expiry."""
    current = _current_secrets()
    with unavailable_on_outage(), engine.connect() as conn:
        rows = conn.execute(
            select(
                clients.c.name,
                clients.c.role,
                clients.c.organisers,
                clients.c.provider,
                clients.c.created_at,
                clients.c.disabled_at,
                current.c.expires_at,
                current.c.previous_until,
                func.coalesce(current.c.expires_at <= func.now(), True).label("expired"),
            )
            .outerjoin(current, current.c.client == clients.c.name)
            .order_by(clients.c.name)
        ).all()
    return [
        ClientInfo(
            r.name,
            r.role,
            tuple(r.organisers),
            r.provider,
            r.created_at,
            r.disabled_at,
            r.expires_at,
            r.previous_until,
            bool(r.expired),
        )
        for r in rows
    ]


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


@dataclass(frozen=True)
class SecretFigures:
    """For /metrics: enabled clients by how long their current secret has left."""

    expires_in_s: dict[str, float]  # client -> seconds (negative: expired)
    expiring: int  # within the warning period, not expired yet
    expired: int


def secret_figures(engine: Engine, warning: timedelta = DEFAULT_WARNING) -> SecretFigures:
    """How long each enabled client's current secret has left (one grouped read)."""
    current = _current_secrets()
    left = func.extract("epoch", current.c.expires_at - func.now())
    with unavailable_on_outage(), engine.connect() as conn:
        rows = conn.execute(
            select(clients.c.name, left.label("left"))
            .join(current, current.c.client == clients.c.name)
            .where(clients.c.disabled_at.is_(None), current.c.expires_at.is_not(None))
        ).all()
    figures = {r.name: float(r.left) for r in rows}
    window = warning.total_seconds()
    return SecretFigures(
        expires_in_s=figures,
        expiring=sum(1 for v in figures.values() if 0 < v <= window),
        expired=sum(1 for v in figures.values() if v <= 0),
    )


# Every request's look-up: a named raw statement (see hub.database.raw), one primary-key probe.
LOOKUP = """
SELECT c.name, c.role, c.organisers, c.provider, s.secret_sha256, s.expires_at, s.replaced_at,
       extract(epoch FROM s.expires_at - now()) AS left
FROM client_secrets s JOIN clients c ON c.name = s.client
WHERE s.secret_sha256 = ANY(%s) AND c.disabled_at IS NULL
"""


@dataclass(frozen=True)
class _Found:
    sender: Sender
    digest: str
    expires_at: datetime
    left_s: float
    replaced: bool


class Authenticator:
    """Looks senders up by secret, in the database on every request.

    No answer is cached: a cache would keep a revoked secret (or a rotated one past its grace
    period) working on every replica until it expired. The look-up is one primary-key probe by
    the secret's SHA-256, and the digest found is compared with the one presented in constant
    time (`hmac.compare_digest`): timing can tell at most something about a hash of a 256-bit
    random value, which gives no way towards the secret itself.

    A client that uses a secret expiring within `expiry_warning` (or a replaced one during its
    grace period) gets a WARNING in the log, at most once an hour per secret and process.
    """

    def __init__(self, engine: Engine, expiry_warning: timedelta = DEFAULT_WARNING) -> None:
        self.engine = engine
        # The look-up is one statement on its own: no BEGIN and ROLLBACK around it.
        self._reads = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.expiry_warning_s = expiry_warning.total_seconds()
        self._warned: dict[str, float] = {}
        self._lock = threading.Lock()

    def by_secret(self, secret: str) -> Sender:
        """The sender holding this bearer secret, `SecretExpired`, or `AuthenticationFailed`."""
        digest = _digest(secret)
        found = self._lookup(digest)
        if found is None:
            raise AuthenticationFailed(UNKNOWN)
        return self._checked(found)

    def by_name_and_secret(self, name: str, secret: str) -> Sender:
        """The sender with this name and secret (SOAP UsernameToken, HTTP Basic)."""
        found = self._lookup(_digest(secret))
        if found is None or not hmac.compare_digest(found.sender.name.encode(), name.encode()):
            raise AuthenticationFailed(UNKNOWN)
        return self._checked(found)

    def _checked(self, found: _Found) -> Sender:
        if found.left_s <= 0:
            raise SecretExpired
        if found.left_s <= self.expiry_warning_s:
            self._warn(found)
        return found.sender

    def _warn(self, found: _Found) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._warned.get(found.digest)
            if last is not None and now - last < WARN_EVERY_S:
                return
            self._warned[found.digest] = now
        when = f"{found.expires_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
        days = found.left_s / 86400
        name = found.sender.name
        if found.replaced:
            log.warning(
                "client %s still uses its replaced secret, which stops working at %s (in %.1f days): "
                "the new secret from hub clients rotate must be in use before then",
                name,
                when,
                days,
            )
        else:
            log.warning(
                "client %s's secret expires at %s (in %.1f days): give it a new one with "
                "hub clients rotate %s",
                name,
                when,
                days,
                name,
            )

    def _lookup(self, digest: str) -> _Found | None:
        with unavailable_on_outage(), self._reads.connect() as conn:
            return self.found_in(conn, [digest]).get(digest)

    def found_in(self, conn: Connection, digests: Sequence[str]) -> dict[str, _Found]:
        """The clients holding these secrets' digests, looked up in one statement inside the
        caller's transaction (the intake's group commit); a digest not found is missing."""
        rows = raw(conn).execute(LOOKUP, (list(set(digests)),)).fetchall()
        return {
            r.secret_sha256: _Found(
                Sender(r.name, r.role, tuple(r.organisers or ()), r.provider),
                r.secret_sha256,
                r.expires_at,
                float(r.left),
                r.replaced_at is not None,
            )
            for r in rows
            if any(hmac.compare_digest(r.secret_sha256.encode(), d.encode()) for d in digests)
        }

    def sender_of(self, found: _Found | None) -> Sender:
        """The sender behind a bearer secret's look-up (`found_in`): `AuthenticationFailed` if
        none, `SecretExpired` if its secret has expired."""
        if found is None:
            raise AuthenticationFailed(UNKNOWN)
        return self._checked(found)


def digest_of(secret: str) -> str:
    """What the hub stores and looks up of a secret: its SHA-256, in hex."""
    return _digest(secret)


def check_may_send(sender: Sender, message_type: str, organiser: str | None, provider: str | None) -> None:
    """Raise `NotAllowed` unless the sender may send this message for this organiser or provider."""
    if sender.is_admin:
        raise NotAllowed("admins replay messages; they do not send them")
    if sender.role == "system":
        if message_type not in SYSTEM_TYPES:
            raise NotAllowed(f"a client system may not send {message_type}")
        if organiser is not None and not sender.acts_for(organiser):
            many = "organisers" if len(sender.organisers) > 1 else "organiser"
            raise NotAllowed(
                f"this client may only send messages for {many} {organisers_text(sender.organisers)}"
            )
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
    systems (each system client acts for one or more organisers), that provider, and admins."""
    if sender.is_admin:
        return True
    if sender.role == "system":
        return sender.acts_for(organiser)
    return provider is not None and sender.provider == provider


def may_manage_party(sender: Sender, business_id: str) -> bool:
    """A party's invoicing details (read and set): admins for anyone, a provider for itself, an
    organiser's systems for their organisers. Decided on the business ID alone, before any read,
    so a refusal tells nothing about whether details are stored."""
    if sender.is_admin:
        return True
    if sender.role == "system":
        return sender.acts_for(business_id)
    return sender.role == "provider" and sender.provider is not None and sender.provider == business_id
