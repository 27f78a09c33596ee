"""The fast lane (api/fastlane.py) answers the two message routes exactly as FastAPI's router
does: the same status, headers and body for every kind of request, good and bad, REST and SOAP.

Each request is sent to two in-process apps over the same database: the hub's own, and one
built the same way with the fast lane taken out, so that the router serves the routes."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from starlette.responses import Response

from psop_hub.api.app import create_app
from psop_hub.api.fastlane import FastLane, plain_endpoint
from psop_hub.bootstrap import api_services
from psop_hub.hub.senders import add_client
from psop_hub.hub.settings import Settings
from tests.e2e.test_soap import decision_envelope, envelope, soap_headers
from tests.e2e.test_soap import granted as soap_granted
from tests.messages import ORGANISER, OTHER_ORGANISER, granted, uid

# What differs between two answers to the same kind of request: ids the hub or the test made.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def without_lane(app: FastAPI) -> FastAPI:
    app.user_middleware = [m for m in app.user_middleware if m.cls is not FastLane]
    return app


@dataclass
class Apps:
    lane: TestClient
    router: TestClient
    client: str  # a county's system client: its name (SOAP's UsernameToken) and secret
    secret: str


@pytest.fixture(scope="module")
def apps(settings: Settings, engine: Engine) -> Iterator[Apps]:
    name = uid("lane-county")
    secret = add_client(engine, name, "system", ORGANISER, None)
    with (
        TestClient(create_app(api_services(settings))) as lane,
        TestClient(without_lane(create_app(api_services(settings)))) as router,
    ):
        yield Apps(lane, router, name, secret)


Answer = tuple[int, dict[str, str], str]


def answer(response: Any, *made: str) -> Answer:
    """Status, headers (but the length, which follows the ids) and body, the ids replaced."""
    text = _UUID.sub("<uuid>", response.text)
    for value in made:
        text = text.replace(value, "<made>")
    headers = {k: v for k, v in response.headers.items() if k not in ("content-length", "date")}
    return response.status_code, headers, text


Rest = Callable[[str, str], tuple[dict[str, str], bytes]]


def rest_cases() -> dict[str, Rest]:
    def body(message: dict[str, Any], message_id: str | None = None) -> bytes:
        return json.dumps({**message, "message_id": message_id or message["message_id"]}).encode()

    def auth(secret: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}

    return {
        "accepted": lambda s, m: (auth(s), body(granted(uid("v")), m)),
        "no credentials": lambda s, m: ({"Content-Type": "application/json"}, body(granted(uid("v")))),
        "unknown secret": lambda s, m: (auth("not-a-secret-of-anyone"), body(granted(uid("v")))),
        "not JSON": lambda s, m: (auth(s), b'{"message_id": '),
        "not a JSON type": lambda s, m: ({**auth(s), "Content-Type": "text/plain"}, body(granted(uid("v")))),
        "invalid fields": lambda s, m: (
            auth(s),
            body(granted("", quantity="-1", valid_to="2020-01-01", unit="week"), m),
        ),
        "another organiser's": lambda s, m: (
            auth(s),
            body(granted(uid("v"), organiser=OTHER_ORGANISER), m),
        ),
        "too large": lambda s, m: (auth(s), b" " * 1_048_577),
    }


def both(apps: Apps, path: str, request: Callable[[str], tuple[dict[str, str], bytes]]) -> list[Answer]:
    """The same kind of request (made for a fresh message id) answered by the lane and by the router."""
    seen = []
    for client in (apps.lane, apps.router):
        message_id = uid("m")
        headers, content = request(message_id)
        seen.append(answer(client.post(path, content=content, headers=headers), message_id))
    return seen


@pytest.mark.parametrize("case", list(rest_cases()))
def test_rest_answers_are_the_routers(apps: Apps, case: str) -> None:
    make = rest_cases()[case]
    seen = both(apps, "/api/v1/messages", lambda message_id: make(apps.secret, message_id))
    assert seen[0] == seen[1]
    assert (
        seen[0][0]
        == {
            "accepted": 202,
            "no credentials": 401,
            "unknown secret": 401,
            "not JSON": 400,
            "not a JSON type": 415,
            "invalid fields": 422,
            "another organiser's": 403,
            "too large": 413,
        }[case]
    )


def test_rest_duplicates_and_conflicts_are_the_routers(apps: Apps) -> None:
    headers = {"Authorization": f"Bearer {apps.secret}", "Content-Type": "application/json"}
    seen: list[list[Answer]] = []
    for client in (apps.lane, apps.router):
        message_id, number = uid("m"), uid("v")
        first = json.dumps({**granted(number), "message_id": message_id}).encode()
        changed = json.dumps({**granted(number, quantity="7"), "message_id": message_id}).encode()
        seen.append(
            [
                answer(client.post("/api/v1/messages", content=body, headers=headers), message_id, number)
                for body in (first, first, changed)
            ]
        )
    assert seen[0] == seen[1]
    assert [status for status, _, _ in seen[0]] == [202, 200, 409]


# A SOAP call from (client name, secret) with this message id.
Soap = Callable[[tuple[str, str], str], tuple[dict[str, str], bytes]]


def soap_cases() -> dict[str, Soap]:
    def decision(client: tuple[str, str] | None, message_id: str, **over: Any) -> bytes:
        return decision_envelope(soap_granted(uid("v"), message_id, **over), client)

    return {
        "accepted": lambda c, m: (soap_headers(), decision(c, m)),
        "invalid fields": lambda c, m: (soap_headers(), decision(c, m, Quantity="-1", Unit="week")),
        "unknown secret": lambda c, m: (soap_headers(), decision((c[0], "not-a-secret-of-anyone"), m)),
        "no credentials": lambda c, m: (soap_headers(), decision(None, m)),
        "not XML": lambda c, m: (soap_headers(), b"<soap:Envelope"),
        "SOAP 1.2": lambda c, m: ({"Content-Type": "application/soap+xml"}, decision(c, m)),
        "unknown operation": lambda c, m: (soap_headers("Nothing"), envelope("Nothing", "", c)),
        "action names another operation": lambda c, m: (soap_headers("GetMessageStatus"), decision(c, m)),
    }


@pytest.mark.parametrize("case", list(soap_cases()))
def test_soap_answers_are_the_routers(apps: Apps, case: str) -> None:
    make = soap_cases()[case]
    seen = both(apps, "/soap/v1", lambda message_id: make((apps.client, apps.secret), message_id))
    assert seen[0] == seen[1]
    assert seen[0][0] == (200 if case == "accepted" else 500)


def test_the_lane_holds_the_two_message_routes_and_only_them(settings: Settings) -> None:
    app = create_app(api_services(settings))
    (lane,) = [m for m in app.user_middleware if m.cls is FastLane]
    assert set(lane.kwargs["routes"]) == {("POST", "/api/v1/messages"), ("POST", "/soap/v1")}
    # Innermost of the hub's middleware: inside ProblemOnCrash, the access log and the headers.
    assert app.user_middleware[-1] is lane


async def _takes_more(request: Request, limit: int) -> Response:
    raise AssertionError


def _not_async(request: Request) -> Response:
    raise AssertionError


@pytest.mark.parametrize("endpoint", [_takes_more, _not_async])
def test_an_endpoint_that_needs_the_framework_is_refused(endpoint: Any) -> None:
    with pytest.raises(TypeError, match="fast lane"):
        plain_endpoint(endpoint)
