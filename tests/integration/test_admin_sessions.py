"""The admin page's sign-in, sessions, CSRF refusal, security headers and language switch,
in-process against the real database (two app instances stand for two API replicas)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from psop_hub.api.adminpage.auth import SESSION_COOKIE, SIGN_IN_COOKIE
from psop_hub.api.app import create_app
from psop_hub.bootstrap import api_services
from psop_hub.hub.senders import add_client
from psop_hub.hub.settings import Settings
from tests.integration.adminpage import csrf_of, new_admin, sign_in
from tests.messages import ORGANISER, uid

SIGNED_IN_PAGE = "/admin/messages"


@pytest.fixture(scope="module")
def replicas(settings: Settings, engine: Engine) -> Iterator[tuple[TestClient, TestClient]]:
    """Two applications over the same database, as two API replicas behind the load balancer."""
    with (
        TestClient(create_app(api_services(settings))) as one,
        TestClient(create_app(api_services(settings))) as two,
    ):
        yield one, two


@pytest.fixture
def browser(replicas: tuple[TestClient, TestClient]) -> Iterator[TestClient]:
    """Replica one with an empty cookie jar."""
    client = replicas[0]
    client.cookies.clear()
    yield client
    client.cookies.clear()


def _set_cookie(response_headers: list[tuple[str, str]], name: str) -> str:
    values = [v for k, v in response_headers if k.lower() == "set-cookie" and v.startswith(name + "=")]
    assert values, response_headers
    return values[-1]


def test_a_signed_out_browser_is_sent_to_the_sign_in_form(browser: TestClient) -> None:
    answer = browser.get("/admin/?q=V-1&lang=fi", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/admin/sign-in?next=%2Fadmin%2F%3Fq%3DV-1%26lang%3Dfi"


def test_sign_in_sets_a_strict_http_only_expiring_cookie(browser: TestClient, engine: Engine) -> None:
    name, secret = new_admin(engine)
    form = browser.get("/admin/sign-in")
    answer = browser.post(
        "/admin/sign-in",
        data={"csrf_token": csrf_of(form.text), "name": name, "secret": secret, "next": SIGNED_IN_PAGE},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == SIGNED_IN_PAGE
    cookie = _set_cookie(answer.headers.multi_items(), SESSION_COOKIE)
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "max-age", "path"} <= attributes
    assert "samesite=strict" in cookie.lower()
    assert "max-age=28800" in cookie.lower()  # HUB_ADMIN_SESSION_MINUTES' default: 8 h idle
    assert "path=/admin" in cookie.lower()
    assert "secure" not in attributes  # plain HTTP here: "auto" leaves Secure off
    # The token in the cookie is not what the database holds (only its digest is stored).
    token = cookie.split(";")[0].split("=", 1)[1]
    with engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM admin_sessions WHERE token_sha256 = :t"), {"t": token}
            ).scalar()
            == 0
        )
    assert browser.get(SIGNED_IN_PAGE).status_code == 200


def test_the_cookie_is_secure_over_https(settings: Settings, engine: Engine) -> None:
    name, secret = new_admin(engine)
    with TestClient(create_app(api_services(settings)), base_url="https://hub.example") as client:
        form = client.get("/admin/sign-in")
        assert "secure" in _set_cookie(form.headers.multi_items(), SIGN_IN_COOKIE).lower()
        answer = client.post(
            "/admin/sign-in",
            data={"csrf_token": csrf_of(form.text), "name": name, "secret": secret, "next": SIGNED_IN_PAGE},
            follow_redirects=False,
        )
        assert "; secure" in _set_cookie(answer.headers.multi_items(), SESSION_COOKIE).lower()
    always = settings.model_copy(update={"admin_cookie_secure": "always"})
    with TestClient(create_app(api_services(always))) as client:
        form = client.get("/admin/sign-in")
        assert "; secure" in _set_cookie(form.headers.multi_items(), SIGN_IN_COOKIE).lower()


def test_every_refusal_reads_the_same(browser: TestClient, engine: Engine) -> None:
    name, secret = new_admin(engine)
    system = uid("county")
    system_secret = add_client(engine, system, "system", ORGANISER, None)
    bodies = []
    for who, what in (
        (name, "wrong-secret"),  # a real admin, a wrong secret
        (uid("nobody"), secret),  # an unknown name with a real secret
        (uid("nobody"), "wrong-secret"),  # nothing right
        (system, system_secret),  # right credentials, but not an admin
    ):
        browser.cookies.clear()
        form = browser.get("/admin/sign-in")
        answer = browser.post(
            "/admin/sign-in",
            data={"csrf_token": csrf_of(form.text), "name": who, "secret": what, "next": SIGNED_IN_PAGE},
            follow_redirects=False,
        )
        assert answer.status_code == 401
        assert SESSION_COOKIE not in answer.cookies
        bodies.append(re.sub(r'value="[^"]+"', "", answer.text).replace(f'value="{SIGNED_IN_PAGE}"', ""))
        assert "Unknown name or secret, or not an admin client." in answer.text
    assert len(set(bodies)) == 1


def test_a_sign_in_without_the_forms_token_is_refused(browser: TestClient, engine: Engine) -> None:
    name, secret = new_admin(engine)
    browser.get("/admin/sign-in")
    answer = browser.post(
        "/admin/sign-in",
        data={"csrf_token": "forged", "name": name, "secret": secret},
        follow_redirects=False,
    )
    assert answer.status_code == 403
    assert "security token is missing or wrong" in answer.text
    assert SESSION_COOKIE not in answer.cookies


def test_a_post_without_the_sessions_csrf_token_is_refused(browser: TestClient, engine: Engine) -> None:
    name, secret = new_admin(engine)
    sign_in(browser, name, secret, SIGNED_IN_PAGE)
    for data in ({}, {"csrf_token": ""}, {"csrf_token": "x" * 43}):
        answer = browser.post("/admin/sign-out", data=data, follow_redirects=False)
        assert answer.status_code == 403, data
        assert "security token is missing or wrong: nothing was done" in answer.text
    assert browser.get(SIGNED_IN_PAGE, follow_redirects=False).status_code == 200  # still signed in


def test_sign_out_ends_the_session_on_every_replica(
    replicas: tuple[TestClient, TestClient], engine: Engine
) -> None:
    one, two = replicas
    one.cookies.clear()
    name, secret = new_admin(engine)
    sign_in(one, name, secret, SIGNED_IN_PAGE)
    token = one.cookies.get(SESSION_COOKIE, path="/admin")
    assert token
    # The other replica knows the session: it is in PostgreSQL, not in a process.
    two.cookies.clear()
    two.cookies.set(SESSION_COOKIE, token, path="/admin")
    page = two.get(SIGNED_IN_PAGE, follow_redirects=False)
    assert page.status_code == 200
    answer = two.post("/admin/sign-out", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/admin/sign-in?signed_out=1"
    # Replica one's browser still holds the cookie, and it opens nothing any more.
    assert one.get(SIGNED_IN_PAGE, follow_redirects=False).status_code == 303
    one.cookies.clear()
    two.cookies.clear()


def test_a_disabled_client_loses_its_session_at_once(browser: TestClient, engine: Engine) -> None:
    name, secret = new_admin(engine)
    sign_in(browser, name, secret, SIGNED_IN_PAGE)
    assert browser.get(SIGNED_IN_PAGE, follow_redirects=False).status_code == 200
    with engine.begin() as conn:
        conn.execute(text("UPDATE clients SET disabled_at = now() WHERE name = :n"), {"n": name})
    assert browser.get(SIGNED_IN_PAGE, follow_redirects=False).status_code == 303


@pytest.mark.parametrize(("column", "minutes"), [("last_seen_at", 8 * 60 + 1), ("created_at", 24 * 60 + 1)])
def test_a_session_expires_when_idle_or_old(
    browser: TestClient, engine: Engine, column: str, minutes: int
) -> None:
    name, secret = new_admin(engine)
    sign_in(browser, name, secret, SIGNED_IN_PAGE)
    with engine.begin() as conn:
        conn.execute(
            text(f"UPDATE admin_sessions SET {column} = now() - make_interval(mins => :m) WHERE client = :n"),
            {"m": minutes, "n": name},
        )
    answer = browser.get(SIGNED_IN_PAGE, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/admin/sign-in")


def test_a_used_session_stays_alive(browser: TestClient, engine: Engine) -> None:
    name, secret = new_admin(engine)
    sign_in(browser, name, secret, SIGNED_IN_PAGE)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE admin_sessions SET last_seen_at = now() - interval '7 hours' WHERE client = :n"),
            {"n": name},
        )
    assert browser.get(SIGNED_IN_PAGE, follow_redirects=False).status_code == 200
    with engine.connect() as conn:
        idle = conn.execute(
            text("SELECT now() - last_seen_at < interval '1 minute' FROM admin_sessions WHERE client = :n"),
            {"n": name},
        ).scalar()
    assert idle is True


def test_sign_in_goes_only_to_pages_of_the_admin_page(browser: TestClient, engine: Engine) -> None:
    name, secret = new_admin(engine)
    for target in ("https://evil.example/", "//evil.example/admin/", "/admin//evil.example", "/api/v1/x"):
        browser.cookies.clear()
        form = browser.get("/admin/sign-in")
        answer = browser.post(
            "/admin/sign-in",
            data={"csrf_token": csrf_of(form.text), "name": name, "secret": secret, "next": target},
            follow_redirects=False,
        )
        assert answer.headers["location"] == "/admin/messages", target


def test_pages_carry_the_security_headers(browser: TestClient, engine: Engine) -> None:
    name, secret = new_admin(engine)
    for answer in (
        browser.get("/admin/sign-in"),
        browser.get("/admin/static/admin.css"),
        browser.get("/admin/static/admin.js"),
        browser.get("/admin/", follow_redirects=False),
        browser.get("/admin/no-such-page"),
    ):
        csp = answer.headers["content-security-policy"]
        assert "default-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "same-origin"
    sign_in(browser, name, secret, SIGNED_IN_PAGE)
    assert browser.get(SIGNED_IN_PAGE).headers["cache-control"] == "no-store"
    # The API keeps its own answers: no page policy on JSON.
    assert "content-security-policy" not in browser.get("/health/live").headers


def test_pages_load_nothing_from_elsewhere_and_run_no_inline_script(
    browser: TestClient, engine: Engine
) -> None:
    name, secret = new_admin(engine)
    sign_in(browser, name, secret, SIGNED_IN_PAGE)
    for html in (browser.get(SIGNED_IN_PAGE).text, browser.get("/admin/sign-in").text):
        for url in re.findall(r'(?:src|href|action)="([^"]*)"', html):
            assert url.startswith(("/admin", "?", "#")), url
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
        assert " style=" not in html and "<style" not in html and " on" + "click=" not in html


def test_the_language_switch(browser: TestClient) -> None:
    english = browser.get("/admin/sign-in")
    assert '<html lang="en">' in english.text and "Sign in" in english.text
    finnish = browser.get("/admin/sign-in?lang=fi")
    assert '<html lang="fi">' in finnish.text and "Kirjaudu sisään" in finnish.text
    assert "psop_admin_lang=fi" in finnish.headers["set-cookie"]
    # remembered without the parameter, and switched back the same way
    assert '<html lang="fi">' in browser.get("/admin/sign-in").text
    assert '<html lang="en">' in browser.get("/admin/sign-in?lang=en").text
    browser.cookies.clear()
    asked = browser.get("/admin/sign-in", headers={"Accept-Language": "fi-FI,fi;q=0.9,en;q=0.5"})
    assert '<html lang="fi">' in asked.text
    assert '<html lang="en">' in browser.get("/admin/sign-in", headers={"Accept-Language": "de"}).text
    # the switch links keep the rest of the query
    assert (
        'href="/admin/sign-in?next=%2Fadmin%2Fjobs&amp;lang=fi"'
        in browser.get("/admin/sign-in?next=%2Fadmin%2Fjobs").text
    )
