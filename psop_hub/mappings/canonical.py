"""The canonical message (INTERFACES §2): envelope, typed payload, and the one parser every adapter uses.

`parse_message` turns a decoded JSON body into an `Envelope` or raises `ValidationFailed` listing every
problem at once, each on a dotted field path (`payload.client.hetu`). Error messages are short plain
English and never repeat a HETU.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import date
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from psop_hub.hub.errors import FieldError, ValidationFailed
from psop_hub.hub.privacy import mask_text
from psop_hub.mappings.fields import Identifier, Timestamp
from psop_hub.mappings.jsontext import shown
from psop_hub.mappings.payloads import (
    CROSS_FIELD_ERROR,
    MESSAGE_TYPES,
    PAYLOAD_MODELS,
    Payload,
    cross_field_problems,
)

__all__ = ["MESSAGE_TYPES", "Envelope", "parse_message", "parse_payload", "payload_model"]
_TYPE_LIST = ", ".join(MESSAGE_TYPES)


def payload_model(type: str) -> builtins.type[Payload]:
    """The payload model class of a message type; ValueError for an unknown type."""
    try:
        return PAYLOAD_MODELS[type]
    except (KeyError, TypeError):
        raise ValueError(f"unknown message type; must be one of {_TYPE_LIST}") from None


class Envelope(BaseModel):
    """A valid canonical message. Build it with `parse_message`, which reports every error at once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    message_id: Identifier
    type: str
    sent_at: Timestamp
    correlation_id: Identifier | None = None
    payload: Payload

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        payload_model(value)
        return value

    @model_validator(mode="before")
    @classmethod
    def _typed_payload(cls, data: Any) -> Any:
        # Picks the payload model from `type`, so a dict payload is never matched against the wrong member.
        if isinstance(data, Mapping) and isinstance(data.get("payload"), Mapping):
            if isinstance(data.get("type"), str) and data["type"] in PAYLOAD_MODELS:
                model = PAYLOAD_MODELS[data["type"]]
                return {**data, "payload": model.model_validate(data["payload"])}
        return data

    @model_validator(mode="after")
    def _payload_matches_type(self) -> Self:
        if not isinstance(self.payload, payload_model(self.type)):
            raise ValueError("payload does not match type")
        return self

    def payload_json(self) -> dict[str, Any]:
        """The payload as a JSON-ready dict: decimals as strings, dates ISO, absent fields omitted."""
        return self.payload.model_dump(mode="json", exclude_none=True)

    def envelope_json(self) -> dict[str, Any]:
        """The whole message as a JSON-ready dict, in the canonical form."""
        message: dict[str, Any] = {
            "message_id": self.message_id,
            "type": self.type,
            "sent_at": self.sent_at.isoformat(),
        }
        if self.correlation_id is not None:
            message["correlation_id"] = self.correlation_id
        message["payload"] = self.payload_json()
        return message


class _Header(BaseModel):
    """The envelope fields checked on their own, so that payload errors can be reported alongside."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    message_id: Identifier
    type: str
    sent_at: Timestamp
    correlation_id: Identifier | None = None
    payload: dict[str, Any]

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        payload_model(value)  # the types are the payload models' keys: one list
        return value


def parse_message(raw: object, *, today: date | None = None) -> Envelope:
    """Validate a decoded JSON body as a canonical message; raise ValidationFailed listing every error."""
    if not isinstance(raw, Mapping):
        raise ValidationFailed([FieldError("", "the message must be a JSON object")])
    context = {"today": today or date.today()}
    errors: list[FieldError] = []
    header: _Header | None = None
    try:
        header = _Header.model_validate(raw, context=context)
    except ValidationError as exc:
        errors.extend(_field_errors(exc, ""))
    payload: Payload | None = None
    raw_type, raw_payload = raw.get("type"), raw.get("payload")
    if isinstance(raw_type, str) and raw_type in PAYLOAD_MODELS and isinstance(raw_payload, Mapping):
        payload, payload_errors = _validate_payload(PAYLOAD_MODELS[raw_type], raw_payload, context)
        errors.extend(payload_errors)
    if errors or header is None or payload is None:
        raise ValidationFailed(_scrubbed(errors))
    # Every field is validated above (the payload by the model its type names): one validation,
    # not a second pass over the same values (~8 us a message, a quarter of the header's cost).
    return Envelope.model_construct(
        message_id=header.message_id,
        type=header.type,
        sent_at=header.sent_at,
        correlation_id=header.correlation_id,
        payload=payload,
    )


def parse_payload(type: str, payload: dict[str, Any]) -> Payload:
    """Read a stored payload back into its typed model; ValidationFailed if it does not fit the type."""
    try:
        model = payload_model(type)
    except ValueError as exc:
        raise ValidationFailed([FieldError("type", str(exc))]) from None
    if not isinstance(payload, Mapping):
        raise ValidationFailed([FieldError("payload", "must be a JSON object")])
    parsed, errors = _validate_payload(model, payload, {"today": date.today()})
    if parsed is None:
        raise ValidationFailed(_scrubbed(errors))
    return parsed


def _validate_payload(
    model: type[Payload], raw: Mapping[str, Any], context: dict[str, date]
) -> tuple[Payload | None, list[FieldError]]:
    try:
        return model.model_validate(raw, context=context), []
    except ValidationError as exc:
        details = exc.errors(include_url=False, include_input=False)
    # The model runs its cross-field rules only once every field is valid, and stops at the first;
    # rerun them all on the raw values (a date that did not parse is skipped) so one answer lists
    # every problem.
    errors = [_field_error(d, "payload") for d in details if d["type"] != CROSS_FIELD_ERROR]
    for field, message in cross_field_problems(model, raw):
        errors.append(FieldError(_join("payload", field), message))
    return None, errors


def _field_errors(exc: ValidationError, prefix: str) -> list[FieldError]:
    return [_field_error(detail, prefix) for detail in exc.errors(include_url=False, include_input=False)]


def _join(prefix: str, *parts: object) -> str:
    # A part may be a sender's unknown key, of any length: only its beginning is repeated.
    return ".".join(shown(str(part)) for part in (prefix, *parts) if str(part) != "")


def _field_error(detail: Mapping[str, Any], prefix: str) -> FieldError:
    kind: str = detail["type"]
    context: Mapping[str, Any] = detail.get("ctx") or {}
    return FieldError(_join(prefix, *detail["loc"]), _message(kind, context, detail["msg"]))


# Pydantic's built-in wording ("Input should be ...") rewritten to match the hub's own messages.
_FIXED_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "unknown field",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "dict_type": "must be a JSON object",
    "list_type": "must be a list",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "frozen_instance": "cannot be changed",
}


def _message(kind: str, context: Mapping[str, Any], fallback: str) -> str:
    if kind in _FIXED_MESSAGES:
        return _FIXED_MESSAGES[kind]
    if kind == "string_too_short":
        return "must not be empty" if context.get("min_length") == 1 else "is too short"
    if kind == "string_too_long":
        return f"must be at most {context.get('max_length')} characters"
    if kind == "too_long":
        return f"must have at most {context.get('max_length')} items"
    if kind == "greater_than_equal":
        return f"must be at least {context.get('ge')}"
    if kind == "less_than_equal":
        return f"must be at most {context.get('le')}"
    if kind == "literal_error":
        return f"must be one of {context.get('expected')}".replace("'", "")
    if kind == "value_error":
        return str(context.get("error", fallback))
    if kind == "assertion_error":
        return str(context.get("error", fallback))
    return fallback


def _scrubbed(errors: list[FieldError]) -> list[FieldError]:
    """Mask anything HETU-shaped (even in a field name) and drop repeats, keeping the order found."""
    seen: set[FieldError] = set()
    clean: list[FieldError] = []
    for error in errors:
        masked = FieldError(mask_text(error.field), mask_text(error.message))
        if masked not in seen:
            seen.add(masked)
            clean.append(masked)
    return clean
