"""A SOAP client that has gone before its call is validated is not answered, and its call is
neither validated nor stored; one that goes mid-body leaves one debug line, no traceback.

The app is driven through ASGI directly, so that the disconnect is certain: `receive` gives the
whole body, then `http.disconnect`, as uvicorn does once the client's connection has closed.
"""

from __future__ import annotations

import base64
import logging
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from psop_hub.api.app import create_app
from psop_hub.api.metrics import RECEIVED
from psop_hub.bootstrap import api_services
from psop_hub.hub.senders import add_client
from psop_hub.hub.settings import Settings
from psop_hub.hub.tables import messages
from tests.messages import HETU, ORGANISER, uid

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"


def call(message_id: str, attributes: str = "") -> bytes:
    return (
        f'<soap:Envelope xmlns:soap="{SOAP}" xmlns:t="urn:psop-hub:soap:v1"><soap:Body>'
        f"<t:SubmitVoucherDecision><t:VoucherDecision {attributes}><t:MessageId>{message_id}</t:MessageId>"
        f"<t:DecisionType>GRANTED</t:DecisionType><t:VoucherNumber>{uid('GONE')}</t:VoucherNumber>"
        f"<t:Organiser>{ORGANISER}</t:Organiser><t:DecisionDate>2026-11-01</t:DecisionDate>"
        f"<t:Client><t:Hetu>{HETU}</t:Hetu><t:HomeMunicipality>091</t:HomeMunicipality></t:Client>"
        "<t:Service><t:Code>KH01</t:Code><t:Name>Kotihoito</t:Name></t:Service><t:Unit>hour</t:Unit>"
        "<t:UnitValue>25.00</t:UnitValue><t:Quantity>10</t:Quantity><t:ValidFrom>2026-11-01</t:ValidFrom>"
        "<t:ValidTo>2027-10-31</t:ValidTo></t:VoucherDecision></t:SubmitVoucherDecision></soap:Body>"
        "</soap:Envelope>"
    ).encode()


def scope(body: bytes, auth: str) -> dict[str, Any]:
    headers = [
        (b"host", b"testserver"),
        (b"content-type", b"text/xml; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"authorization", f"Basic {auth}".encode()),
    ]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/soap/v1",
        "raw_path": b"/soap/v1",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


def drive(client: TestClient, body: bytes, auth: str, chunks: list[bytes]) -> list[dict[str, Any]]:
    """Run one request through the app: `chunks` of the body, then the client has gone."""
    sent: list[dict[str, Any]] = []
    incoming = [
        *({"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks))
    ]
    if sum(len(c) for c in chunks) < len(body):
        incoming[-1]["more_body"] = True  # the rest never comes: the client goes mid-body

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def run() -> None:
        await client.app(scope(body, auth), receive, send)  # type: ignore[arg-type]

    client.portal.call(run)  # type: ignore[union-attr]
    return sent


def stored(engine: Engine, message_id: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(messages.c.message_id == message_id)).scalar_one())


def validated() -> float:
    """SOAP VoucherDecisions counted as invalid so far (the metric a validation adds to)."""
    return RECEIVED.labels("soap", "VoucherDecision", "ValidationFailed")._value.get()  # type: ignore[attr-defined,no-any-return]


@pytest.fixture
def gone(engine: Engine, settings: Settings) -> Any:
    name = uid("gone")
    secret = add_client(engine, name, "system", ORGANISER, None)
    auth = base64.b64encode(f"{name}:{secret}".encode()).decode()
    with TestClient(create_app(api_services(settings))) as client:
        yield client, auth


def test_a_call_whose_client_has_gone_is_neither_validated_nor_stored(
    gone: Any, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    client, auth = gone
    caplog.set_level(logging.DEBUG, logger="psop_hub")
    valid = str(uuid.uuid4())
    body = call(valid)
    assert drive(client, body, auth, [body]) == []  # nothing answered
    assert stored(engine, valid) == 0
    # A hostile body that would cost thousands of schema errors: not validated at all.
    before = validated()
    hostile = call(str(uuid.uuid4()), " ".join(f'a{i}="x"' for i in range(5000)))
    assert drive(client, hostile, auth, [hostile]) == []
    assert validated() == before
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert any("client disconnected during POST /soap/v1" in r.getMessage() for r in caplog.records)
    # The same call from a client that stays is answered and stored.
    headers = {"Content-Type": "text/xml", "Authorization": f"Basic {auth}"}
    answer = client.post("/soap/v1", content=body, headers=headers)
    assert answer.status_code == 200 and "ACCEPTED" in answer.text, answer.text
    assert stored(engine, valid) == 1
    # ... and the hostile one is validated then: the metric above does count validations.
    refused = client.post("/soap/v1", content=hostile, headers=headers)
    assert refused.status_code == 500 and "soap:Client" in refused.text
    assert validated() == before + 1


def test_a_client_that_goes_mid_body_leaves_one_debug_line_and_no_traceback(
    gone: Any, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    client, auth = gone
    caplog.set_level(logging.DEBUG, logger="psop_hub")
    message_id = str(uuid.uuid4())
    body = call(message_id)
    assert drive(client, body, auth, [body[: len(body) // 2]]) == []
    assert stored(engine, message_id) == 0
    assert [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info] == []
    lines = [r for r in caplog.records if "client disconnected" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.DEBUG
