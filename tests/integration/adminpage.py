"""Helpers for the admin page's in-process tests: an app over the real services, signed-in clients."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from psop_hub.hub.senders import add_client
from tests.messages import uid

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def new_admin(engine: Engine) -> tuple[str, str]:
    """A new admin client: (name, secret)."""
    name = uid("admin")
    return name, add_client(engine, name, "admin", None, None)


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = CSRF.search(html)
    assert found, html
    return found.group(1)


def sign_in(client: TestClient, name: str, secret: str, next_page: str = "/admin/messages") -> str:
    """Sign in through the form as a browser would; returns the page's CSRF token afterwards."""
    form = client.get("/admin/sign-in")
    assert form.status_code == 200, form.text
    answer = client.post(
        "/admin/sign-in",
        data={"csrf_token": csrf_of(form.text), "name": name, "secret": secret, "next": next_page},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == next_page
    return answer.headers["location"]
