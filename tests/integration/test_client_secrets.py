"""Client secrets in the database (hub/senders.py): rotation, grace, expiry, warnings, figures.
The same across processes is tests/e2e/test_client_lifecycle.py; here the edges, without waits:
times are moved by editing `client_secrets.expires_at` as PostgreSQL's clock would."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text, update
from sqlalchemy.engine import Engine

from psop_hub.hub.errors import AuthenticationFailed, InvalidInput, NotFound
from psop_hub.hub.senders import (
    UNKNOWN,
    Authenticator,
    SecretExpired,
    issue_client,
    list_clients,
    revoke_client,
    rotate_client,
    secret_figures,
)
from psop_hub.hub.tables import client_secrets
from tests.messages import ORGANISER, OTHER_ORGANISER, PROVIDER, uid


def expire_in(engine: Engine, client: str, seconds: float, current: bool = True) -> None:
    """Move a client's current (or replaced) secrets' expiry to `seconds` from now."""
    c = client_secrets.c
    where = c.replaced_at.is_(None) if current else c.replaced_at.is_not(None)
    with engine.begin() as conn:
        conn.execute(
            update(client_secrets)
            .where(c.client == client, where)
            .values(expires_at=text(f"now() + make_interval(secs => {seconds})"))
        )


def test_a_secret_has_256_bits_and_only_its_hash_is_stored(engine: Engine) -> None:
    name = uid("hashed")
    issued = issue_client(engine, name, "system", ORGANISER, None)
    assert len(issued.secret) == 43  # 32 bytes, URL-safe base64 without padding
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT * FROM client_secrets WHERE client = :c"), {"c": name}).all()
        clients_row = conn.execute(text("SELECT * FROM clients WHERE name = :c"), {"c": name}).one()
    assert len(stored) == 1 and issued.secret not in str(stored) + str(clients_row)
    assert len(stored[0].secret_sha256) == 64
    lifetime = issued.expires_at - stored[0].created_at
    assert timedelta(days=364) < lifetime <= timedelta(days=365)


def test_rotation_with_grace_keeps_both_until_it_ends(engine: Engine) -> None:
    name = uid("rotating")
    old = issue_client(engine, name, "system", ORGANISER, None).secret
    auth = Authenticator(engine)
    rotated = rotate_client(engine, name, timedelta(hours=1))
    assert rotated.previous_until is not None and rotated.expires_at > rotated.previous_until
    assert auth.by_secret(old).name == auth.by_secret(rotated.secret).name == name
    listed = next(c for c in list_clients(engine) if c.name == name)
    assert listed.previous_until == rotated.previous_until and listed.expires_at == rotated.expires_at

    # A second rotation during the grace period never lengthens the first old secret's time.
    again = rotate_client(engine, name, timedelta(days=30))
    assert again.previous_until is not None
    with engine.connect() as conn:
        ends: dict[str, datetime] = dict(
            conn.execute(
                text("SELECT secret_sha256, expires_at FROM client_secrets WHERE client = :c"), {"c": name}
            ).all()
        )
    assert sorted(ends.values())[0] == rotated.previous_until
    assert len(ends) == 3

    expire_in(engine, name, -1, current=False)  # the grace periods are over
    with pytest.raises(SecretExpired):
        auth.by_secret(old)
    with pytest.raises(SecretExpired):
        auth.by_secret(rotated.secret)
    assert auth.by_secret(again.secret).name == name
    assert next(c for c in list_clients(engine) if c.name == name).previous_until is None


def test_no_grace_refuses_the_old_secret_at_once_and_revoked_clients_are_not_rotated(engine: Engine) -> None:
    name = uid("leaked")
    old = issue_client(engine, name, "system", ORGANISER, None).secret
    new = rotate_client(engine, name, timedelta(0)).secret
    auth = Authenticator(engine)
    with pytest.raises(SecretExpired):
        auth.by_secret(old)
    assert auth.by_secret(new).name == name
    revoke_client(engine, name)
    with pytest.raises(AuthenticationFailed) as refused:
        auth.by_secret(new)
    assert str(refused.value) == UNKNOWN and not isinstance(refused.value, SecretExpired)
    with pytest.raises(InvalidInput):
        rotate_client(engine, name, timedelta(days=1))
    with pytest.raises(NotFound):
        rotate_client(engine, uid("nobody"), timedelta(days=1))
    with pytest.raises(InvalidInput):
        rotate_client(engine, name, timedelta(seconds=-1))


def test_expired_is_said_only_to_the_holder_under_its_own_name(engine: Engine) -> None:
    name = uid("expired")
    secret = issue_client(engine, name, "system", ORGANISER, None, lifetime=timedelta(days=1)).secret
    expire_in(engine, name, -5)
    auth = Authenticator(engine)
    with pytest.raises(SecretExpired) as expired:
        auth.by_name_and_secret(name, secret)
    assert name not in str(expired.value)
    for wrong_name in ("someone-else", name.upper()):
        with pytest.raises(AuthenticationFailed) as refused:
            auth.by_name_and_secret(wrong_name, secret)
        assert not isinstance(refused.value, SecretExpired)
    assert next(c for c in list_clients(engine) if c.name == name).expired
    fresh = rotate_client(engine, name, timedelta(days=7))
    assert fresh.previous_until is None  # nothing was working any more
    assert auth.by_name_and_secret(name, fresh.secret).name == name


def test_a_warning_once_per_secret_before_expiry_and_the_figures(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    soon, fine = uid("soon"), uid("fine")
    soon_secret = issue_client(engine, soon, "system", ORGANISER, None, lifetime=timedelta(days=10)).secret
    fine_secret = issue_client(engine, fine, "system", ORGANISER, None).secret
    auth = Authenticator(engine, expiry_warning=timedelta(days=30))
    with caplog.at_level(logging.WARNING, logger="psop_hub.hub.senders"):
        for _ in range(3):
            auth.by_secret(soon_secret)
            auth.by_secret(fine_secret)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"client {soon}'s secret expires" in warnings[0]
    assert soon_secret not in warnings[0]

    caplog.clear()
    rotated = rotate_client(engine, fine, timedelta(days=2))
    with caplog.at_level(logging.WARNING, logger="psop_hub.hub.senders"):
        auth.by_secret(fine_secret)  # the replaced one, during its grace period
        auth.by_secret(rotated.secret)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"client {fine} still uses its replaced secret" in warnings[0]

    figures = secret_figures(engine, timedelta(days=30))
    assert 9 * 86400 < figures.expires_in_s[soon] <= 10 * 86400
    assert figures.expires_in_s[fine] > 300 * 86400  # its current secret, not the replaced one
    expired = uid("gone")
    issue_client(engine, expired, "system", ORGANISER, None)
    expire_in(engine, expired, -60)
    after = secret_figures(engine, timedelta(days=30))
    assert after.expired == figures.expired + 1 and after.expires_in_s[expired] < 0
    assert after.expiring >= 1
    revoke_client(engine, expired)
    assert expired not in secret_figures(engine).expires_in_s


def test_a_system_client_acts_for_the_organisers_it_was_added_with(engine: Engine) -> None:
    name = uid("shared")
    # Repeated once by mistake: each organiser once, in the order given.
    secret = issue_client(engine, name, "system", [OTHER_ORGANISER, ORGANISER, OTHER_ORGANISER], None).secret
    sender = Authenticator(engine).by_secret(secret)
    assert sender.organisers == (OTHER_ORGANISER, ORGANISER)
    [listed] = [c for c in list_clients(engine) if c.name == name]
    assert listed.organisers == (OTHER_ORGANISER, ORGANISER)


@pytest.mark.parametrize(
    ("role", "organisers", "provider", "field", "words"),
    [
        ("system", [], None, "organiser", "a system client needs --organiser"),
        ("system", None, None, "organiser", "a system client needs --organiser"),
        ("provider", [ORGANISER], PROVIDER, "organiser", "only a system client acts for organisers"),
        ("admin", [ORGANISER], None, "organiser", "only a system client acts for organisers"),
        ("system", [ORGANISER], PROVIDER, "provider", "only a provider client acts as a provider"),
        ("provider", None, None, "provider", "a provider client needs --provider"),
    ],
)
def test_a_client_scope_that_does_not_fit_its_role_is_refused(
    engine: Engine, role: str, organisers: list[str] | None, provider: str | None, field: str, words: str
) -> None:
    name = uid("misfit")
    with pytest.raises(InvalidInput, match=words) as caught:
        issue_client(engine, name, role, organisers, provider)
    assert caught.value.errors[0].field == field
    assert name not in {c.name for c in list_clients(engine)}
