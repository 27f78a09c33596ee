"""Admin page sessions: sign-in by client name and secret, a random token in a cookie, a row in
PostgreSQL per session (so every API replica knows it, and a sign-out or a disabled client ends
it at once), an idle limit and an absolute limit, and a per-session CSRF token.

Only the SHA-256 of a session token is stored; the token itself exists only in the admin's cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from psop_hub.hub.database import unavailable_on_outage
from psop_hub.hub.errors import AuthenticationFailed
from psop_hub.hub.senders import Authenticator, Sender
from psop_hub.hub.tables import admin_sessions, clients

__all__ = ["AdminSession", "csrf_matches", "end_session", "purge_expired", "session_of", "sign_in"]

# A session's last_seen_at is written at most this often: a page view costs one read, not a write.
TOUCH_AFTER_S = 60
REFUSED = "unknown name or secret, or not an admin"


@dataclass(frozen=True)
class AdminSession:
    """A signed-in admin: who, the session's CSRF token, when it began."""

    admin: Sender
    csrf_token: str
    created_at: datetime


def _ago(minutes: int = 0, seconds: int = 0) -> ColumnElement[datetime]:
    return func.now() - func.make_interval(0, 0, 0, 0, 0, minutes, seconds)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def sign_in(engine: Engine, authenticator: Authenticator, name: str, secret: str) -> tuple[str, AdminSession]:
    """Open a session for the admin client with this name and secret: (cookie token, session).

    Every refusal is the same `AuthenticationFailed`, whether the name is unknown, the secret
    wrong, the client disabled or not an admin: the answer tells a guesser nothing. (The look-up
    is by the secret's digest, so its cost does not depend on whether the name exists.)
    """
    try:
        sender = authenticator.by_name_and_secret(name, secret)
    except AuthenticationFailed:
        raise AuthenticationFailed(REFUSED) from None
    if not sender.is_admin:
        raise AuthenticationFailed(REFUSED)
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    with unavailable_on_outage(), engine.begin() as conn:
        created = conn.execute(
            insert(admin_sessions)
            .values(token_sha256=_digest(token), client=sender.name, csrf_token=csrf)
            .returning(admin_sessions.c.created_at)
        ).scalar_one()
    return token, AdminSession(sender, csrf, created)


def session_of(engine: Engine, token: str, idle_minutes: int, max_minutes: int) -> AdminSession | None:
    """The live session of this cookie token, or None: unknown, signed out, idle longer than
    `idle_minutes`, older than `max_minutes`, or its client disabled or no longer an admin."""
    if not token or len(token) > 200:
        return None
    digest = _digest(token)
    with unavailable_on_outage(), engine.begin() as conn:
        row = conn.execute(
            select(
                admin_sessions.c.csrf_token,
                admin_sessions.c.created_at,
                admin_sessions.c.last_seen_at < _ago(seconds=TOUCH_AFTER_S),
                clients.c.name,
                clients.c.role,
                clients.c.organisers,
                clients.c.provider,
            )
            .join(clients, clients.c.name == admin_sessions.c.client)
            .where(
                admin_sessions.c.token_sha256 == digest,
                admin_sessions.c.last_seen_at > _ago(idle_minutes),
                admin_sessions.c.created_at > _ago(max_minutes),
                clients.c.disabled_at.is_(None),
                clients.c.role == "admin",
            )
        ).one_or_none()
        if row is None:
            return None
        if row[2]:
            conn.execute(
                update(admin_sessions)
                .where(admin_sessions.c.token_sha256 == digest)
                .values(last_seen_at=func.now())
            )
    return AdminSession(
        Sender(row.name, row.role, tuple(row.organisers), row.provider), row.csrf_token, row.created_at
    )


def end_session(engine: Engine, token: str) -> None:
    """Sign out: the session's row is deleted, so no replica accepts its cookie again."""
    with unavailable_on_outage(), engine.begin() as conn:
        conn.execute(delete(admin_sessions).where(admin_sessions.c.token_sha256 == _digest(token)))


def purge_expired(engine: Engine, idle_minutes: int, max_minutes: int) -> int:
    """Delete sessions past either limit (they are refused anyway); returns how many."""
    with unavailable_on_outage(), engine.begin() as conn:
        done = conn.execute(
            delete(admin_sessions).where(
                (admin_sessions.c.last_seen_at <= _ago(idle_minutes))
                | (admin_sessions.c.created_at <= _ago(max_minutes))
            )
        )
    return int(done.rowcount or 0)


def csrf_matches(session: AdminSession, presented: str | None) -> bool:
    """Whether a form's CSRF token is this session's (compared in constant time)."""
    return bool(presented) and hmac.compare_digest(session.csrf_token.encode(), (presented or "").encode())
