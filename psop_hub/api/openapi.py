"""/openapi.json as the real contract: the canonical message as one schema per type (a union
discriminated on `type`), bearer authentication, and every status with its problem+json body.

FastAPI's generated document is the base; the request body of `POST /api/v1/messages` is read by
hand (the body limits and the error list come before any model), so its schema, its answers and
the errors every route really gives (problem+json, never FastAPI's validation error) are added
here, from the same payload models the hub validates with.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from psop_hub.mappings.payloads import PAYLOAD_MODELS

PROBLEM = "application/problem+json"
REF = "#/components/schemas/{model}"
SECURITY_SCHEME = "bearerAuth"
UNPROTECTED = ("/health/", "/metrics", "/soap/", "/admin/")

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details; `errors` lists every field at fault",
    "required": ["type", "title", "status", "detail", "errors"],
    "properties": {
        "type": {"type": "string", "examples": ["about:blank"]},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": ["string", "null"]}, "message": {"type": "string"}},
            },
        },
        "hub_id": {"type": "string", "format": "uuid", "description": "409: the first message's hub_id"},
    },
}
SUBMITTED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["hub_id", "message_id", "status"],
    "additionalProperties": False,
    "properties": {
        "hub_id": {"type": "string", "format": "uuid"},
        "message_id": {"type": "string", "minLength": 1, "maxLength": 100},
        "status": {"type": "string", "enum": ["accepted", "duplicate"]},
    },
}
# Why each status is answered, for every route that can answer it.
STATUSES = {
    400: "the body is not JSON (or not UTF-8, or nested too deep), or a parameter is malformed",
    401: "no bearer secret, or an unknown, revoked or expired one",
    403: "the sender may not do this (type, organiser or provider outside its scope)",
    404: "no such record, or not the caller's to see",
    409: "the message_id was used before with different content; `hub_id` names the first",
    413: "the body is over the limit (HUB_MAX_BODY_BYTES)",
    415: "the body is not declared JSON: send Content-Type application/json (or a +json type)",
    422: "the message is invalid; `errors` lists every problem",
    429: "over the sender's rate limit (HUB_RATE_LIMIT_PER_MINUTE); `Retry-After` says when to retry",
    503: "the hub cannot store the message durably now; retry with the same message_id",
}
INVALID_INPUT = "a parameter or body value is invalid; `errors` names each"
EXAMPLE_MESSAGE = {
    "message_id": "ATJ-2026-11-0001",
    "type": "voucher.granted",
    "sent_at": "2026-11-02T08:15:00+02:00",
    "payload": {
        "voucher_number": "PS-2026-0001",
        "organiser": "2077474-0",
        "decision_date": "2026-11-01",
        "client": {"hetu": "131052-308T", "home_municipality": "091"},
        "service": {"code": "KH01", "name": "Säännöllinen kotihoito"},
        "unit": "hour",
        "unit_value": "27.50",
        "quantity": "60",
        "valid_from": "2026-11-01",
        "valid_to": "2027-04-30",
    },
}
EXAMPLE_PROBLEM = {
    "type": "about:blank",
    "title": "Invalid message",
    "status": 422,
    "detail": "2 problems",
    "errors": [
        {"field": "payload.client.hetu", "message": "has a wrong check character"},
        {"field": "payload.quantity", "message": "must be greater than zero"},
    ],
}


def message_schemas() -> dict[str, dict[str, Any]]:
    """Component schemas: each payload model, each type's message, and their union."""
    schemas: dict[str, dict[str, Any]] = {}
    members: dict[str, str] = {}
    for message_type, model in PAYLOAD_MODELS.items():
        payload = model.model_json_schema(ref_template=REF)
        schemas.update(payload.pop("$defs", {}))
        schemas[model.__name__] = payload
        name = f"{model.__name__}Message"
        members[message_type] = f"#/components/schemas/{name}"
        schemas[name] = {
            "type": "object",
            "title": f"{message_type} message",
            "additionalProperties": False,
            "required": ["message_id", "type", "sent_at", "payload"],
            "properties": {
                "message_id": {"type": "string", "minLength": 1, "maxLength": 100},
                "type": {"type": "string", "const": message_type},
                "sent_at": {
                    "type": "string",
                    "format": "date-time",
                    "examples": ["2026-11-02T08:15:00+02:00"],
                },
                "correlation_id": {"type": "string", "minLength": 1, "maxLength": 100},
                "payload": {"$ref": REF.format(model=model.__name__)},
            },
        }
    schemas["CanonicalMessage"] = {
        "description": "One canonical message; `type` decides the payload's schema",
        "oneOf": [{"$ref": ref} for ref in members.values()],
        "discriminator": {"propertyName": "type", "mapping": members},
    }
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas["Submitted"] = SUBMITTED_SCHEMA
    return schemas


def _problem(status: int) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": {"$ref": "#/components/schemas/Problem"}}
    if status == 422:
        content["example"] = EXAMPLE_PROBLEM
    return {"description": STATUSES[status], "content": {PROBLEM: content}}


def contract(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of `app`, completed as described above."""
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas.update(message_schemas())
    components["securitySchemes"] = {
        SECURITY_SCHEME: {"type": "http", "scheme": "bearer", "description": "the client's secret"}
    }
    for path, item in document.get("paths", {}).items():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            # Request validation is answered 400 with a problem, never FastAPI's 422 document.
            if "HTTPValidationError" in str(responses.get("422", "")):
                del responses["422"]
                responses["400"] = _problem(400)
            if path.startswith(UNPROTECTED):
                continue
            operation["security"] = [{SECURITY_SCHEME: []}]
            responses["401"] = _problem(401)
            responses["403"] = _problem(403)
            responses["429"] = _problem(429)  # the rate limit counts every authenticated request
            # A value of the right type but wrong (a timestamp without offset, a business ID with
            # a wrong check digit, a missing reason): InvalidInput, 422 naming it.
            problem = {"schema": {"$ref": "#/components/schemas/Problem"}}
            responses.setdefault("422", {"description": INVALID_INPUT, "content": {PROBLEM: problem}})
            if "{" in path or "404" in responses:  # a path parameter, or a look-up by query
                responses["404"] = _problem(404)
            if "requestBody" in operation:  # read by deps.read_json: not JSON, too large, wrong type
                for status in (400, 413, 415):
                    responses[str(status)] = _problem(status)
    # Looking a message up by the sender's own message_id answers 404 when it sent none.
    document["paths"]["/api/v1/messages"]["get"]["responses"]["404"] = _problem(404)
    post = document["paths"]["/api/v1/messages"]["post"]
    post["requestBody"] = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/CanonicalMessage"},
                "example": EXAMPLE_MESSAGE,
            }
        },
    }
    submitted = {"application/json": {"schema": {"$ref": "#/components/schemas/Submitted"}}}
    post["responses"] = {
        "202": {"description": "accepted: stored durably, to be applied", "content": submitted},
        "200": {"description": "a duplicate: the first message's hub_id, applied once", "content": submitted},
        **{str(status): _problem(status) for status in (400, 401, 403, 409, 413, 415, 422, 429, 503)},
    }
    return document


def install(app: FastAPI) -> None:
    """Serve the completed document at /openapi.json (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = contract(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
