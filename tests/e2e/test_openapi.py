"""/openapi.json is checked against what the running hub really answers: each documented status of
`POST /api/v1/messages` is produced by a real request, and its body validates (jsonschema) against
the schema the document gives for it; the request schema (one per type, discriminated on `type`)
accepts every example in examples/rest/ and refuses a payload of another type.

503 is documented but not produced here: it needs the database or broker to fail under a running
hub (tests/faults/test_restarts.py and the container tests do that); nor is 429, which needs a rate
limit (tests/e2e/test_rate_limit.py); their bodies are the same Problem schema.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from tests.e2e.conftest import ROOT, Hub
from tests.messages import PROVIDER, delivery, granted, uid

pytestmark = pytest.mark.e2e
EXAMPLES = sorted((ROOT / "examples" / "rest").glob("*.json"))
MAX_BODY = 1_048_576  # HUB_MAX_BODY_BYTES default


@pytest.fixture(scope="module")
def document(hub: Hub) -> dict[str, Any]:
    answer = httpx.get(f"{hub.url}/openapi.json", timeout=30)
    assert answer.status_code == 200
    return dict(answer.json())


def validator(document: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """A validator for `schema` whose `#/components/...` references resolve in the document."""
    root = {**schema, "components": document["components"]}
    jsonschema.Draft202012Validator.check_schema(root)
    return jsonschema.Draft202012Validator(root)


def documented(document: dict[str, Any], status: int) -> tuple[str, dict[str, Any]]:
    """(media type, schema) the document gives for a status of POST /api/v1/messages."""
    response = document["paths"]["/api/v1/messages"]["post"]["responses"][str(status)]
    ((media_type, content),) = response["content"].items()
    return media_type, content["schema"]


def check(document: dict[str, Any], answer: httpx.Response, status: int) -> None:
    assert answer.status_code == status, answer.text
    media_type, schema = documented(document, status)
    assert answer.headers["content-type"].split(";")[0] == media_type
    validator(document, schema).validate(answer.json())


def test_the_document_declares_bearer_auth_and_every_status(document: dict[str, Any]) -> None:
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "the client's secret",
    }
    post = document["paths"]["/api/v1/messages"]["post"]
    assert post["security"] == [{"bearerAuth": []}]
    assert set(post["responses"]) == {
        *("200", "202", "400", "401", "403", "409", "413", "415", "422", "429", "503")
    }
    assert "HTTPValidationError" not in json.dumps(document)
    union = document["components"]["schemas"]["CanonicalMessage"]
    from psop_hub.mappings.payloads import MESSAGE_TYPES

    assert set(union["discriminator"]["mapping"]) == set(MESSAGE_TYPES)
    assert len(union["oneOf"]) == len(MESSAGE_TYPES)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_request_schema_accepts_every_example(document: dict[str, Any], path: Path) -> None:
    message = json.loads(path.read_text())
    validator(document, {"$ref": "#/components/schemas/CanonicalMessage"}).validate(message)


def test_the_request_schema_refuses_a_payload_of_another_type(document: dict[str, Any]) -> None:
    wrong = {**granted("V-1"), "type": "delivery.reported"}
    check_it = validator(document, {"$ref": "#/components/schemas/CanonicalMessage"})
    assert not check_it.is_valid(wrong)
    assert not check_it.is_valid({**granted("V-1"), "type": "no.such.type"})
    assert check_it.is_valid(granted("V-1"))


def test_every_documented_status_of_post_messages_is_what_the_hub_answers(
    hub: Hub, document: dict[str, Any]
) -> None:
    url = f"{hub.url}/api/v1/messages"
    county = {"Authorization": f"Bearer {hub.secrets['county']}"}
    provider = {"Authorization": f"Bearer {hub.secrets['provider']}"}
    message = granted(uid("OA"))

    check(document, httpx.post(url, json=message, headers=county, timeout=30), 202)
    check(document, httpx.post(url, json=message, headers=county, timeout=30), 200)
    changed = {**message, "payload": {**message["payload"], "quantity": "7"}}
    conflict = httpx.post(url, json=changed, headers=county, timeout=30)
    check(document, conflict, 409)
    assert conflict.json()["hub_id"]
    json_headers = {**county, "Content-Type": "application/json"}
    check(document, httpx.post(url, content=b'{"message_id": ', headers=json_headers, timeout=30), 400)
    check(document, httpx.post(url, json=granted(uid("OA")), timeout=30), 401)
    check(document, httpx.post(url, json=granted(uid("OA")), headers=provider, timeout=30), 403)
    big = b'{"message_id": "' + b"x" * (MAX_BODY + 10) + b'"}'
    check(document, httpx.post(url, content=big, headers=json_headers, timeout=30), 413)
    text_headers = {**county, "Content-Type": "text/plain"}
    check(document, httpx.post(url, content=json.dumps(message), headers=text_headers, timeout=30), 415)
    invalid = delivery("V-1", quantity="0", provider=PROVIDER)
    invalid["payload"]["service_date"] = "2026-13-45"
    answer = httpx.post(url, json=invalid, headers=provider, timeout=30)
    check(document, answer, 422)
    assert {e["field"] for e in answer.json()["errors"]} == {"payload.quantity", "payload.service_date"}
