"""Every list of the canonical message types names the same types, and provider.approved is
validated field by field like the others."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from psop_hub.consumers.handlers import HANDLERS
from psop_hub.hub.errors import ValidationFailed
from psop_hub.hub.senders import PROVIDER_TYPES, SYSTEM_TYPES
from psop_hub.mappings.canonical import parse_message
from psop_hub.mappings.payloads import MESSAGE_TYPES, PAYLOAD_MODELS, ProviderApproved
from psop_hub.mappings.soap import APPROVAL_TYPE, DECISIONS, ORDERS
from tests.messages import approval

ROOT = Path(__file__).resolve().parents[2]


def test_every_list_of_message_types_names_the_same_types() -> None:
    types = set(PAYLOAD_MODELS)
    assert len(MESSAGE_TYPES) == len(types)
    assert set(MESSAGE_TYPES) == types
    assert set(HANDLERS) == types
    assert SYSTEM_TYPES | PROVIDER_TYPES == types
    assert "provider.approved" in SYSTEM_TYPES and "provider.approved" not in PROVIDER_TYPES


def test_every_soap_mapping_names_a_message_type() -> None:
    mapped = {t for t, _ in (*DECISIONS.values(), *ORDERS.values())} | {APPROVAL_TYPE}
    assert mapped <= set(PAYLOAD_MODELS)


def test_a_valid_approval_parses() -> None:
    payload = parse_message(approval(service_codes=["KH01", "KH02"], valid_to="2026-12-31")).payload
    assert isinstance(payload, ProviderApproved)
    assert payload.service_codes == ["KH01", "KH02"]
    assert parse_message(approval()).payload.service_codes is None  # type: ignore[union-attr]


def _errors(**payload: Any) -> dict[str, str]:
    raw = approval()
    raw["payload"] = {**raw["payload"], **payload}
    raw["payload"] = {k: v for k, v in raw["payload"].items() if v is not ...}
    with pytest.raises(ValidationFailed) as caught:
        parse_message(raw)
    return {e.field: e.message for e in caught.value.errors}


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"version": 0}, "payload.version", "at least 1"),
        ({"version": "1"}, "payload.version", "integer"),
        ({"version": True}, "payload.version", "integer"),
        ({"version": 2**31}, "payload.version", "at most"),
        ({"version": ...}, "payload.version", "required"),
        ({"service_codes": []}, "payload.service_codes", "at least one service code"),
        ({"service_codes": ["KH01", "KH01"]}, "payload.service_codes", "KH01 more than once"),
        ({"service_codes": "KH01"}, "payload.service_codes", "must be a list"),
        ({"service_codes": ["KH01", ""]}, "payload.service_codes.1", "must not be empty"),
        ({"service_codes": ["x" * 51]}, "payload.service_codes.0", "at most 50"),
        ({"valid_from": "2026-13-01"}, "payload.valid_from", "valid calendar date"),
        ({"valid_from": ...}, "payload.valid_from", "required"),
        ({"valid_to": "2025-12-31"}, "payload.valid_to", "not be before valid_from"),
        ({"provider": "1572860-1"}, "payload.provider", "check digit"),
        ({"organiser": ...}, "payload.organiser", "required"),
        ({"services": ["KH01"]}, "payload.services", "unknown field"),
    ],
)
def test_approval_errors_name_their_field(change: dict[str, Any], field: str, words: str) -> None:
    errors = _errors(**change)
    assert words in errors[field], errors


def test_every_approval_error_is_listed_at_once() -> None:
    errors = _errors(version=0, service_codes=[], valid_to="2025-01-01", provider="x")
    assert {"payload.version", "payload.service_codes", "payload.valid_to", "payload.provider"} <= set(errors)


def test_every_csv_layout_names_a_message_type() -> None:
    from psop_hub.mappings.csvfiles import Layout

    assert {layout.message_type for layout in Layout} <= set(PAYLOAD_MODELS)


def test_every_type_is_reachable_from_some_transport_and_sendable_by_someone() -> None:
    from psop_hub.mappings.csvfiles import Layout

    soap = {t for t, _ in (*DECISIONS.values(), *ORDERS.values())} | {APPROVAL_TYPE}
    files = {layout.message_type for layout in Layout}
    # REST takes every type; SOAP and files take what client systems and ERPs send in bulk.
    assert soap | files | {"delivery.corrected", "delivery.cancelled"} == set(PAYLOAD_MODELS)


@pytest.mark.parametrize("example", sorted((ROOT / "examples" / "rest").glob("*.json")), ids=lambda p: p.name)
def test_the_reference_keys_are_the_payloads_identifiers(example: Path) -> None:
    """Every voucher, order, event and settlement identifier of each example message, and no other."""
    raw = json.loads(example.read_text())
    payload = parse_message(raw).payload
    identifiers = ("voucher_number", "order_number", "event_id", "settlement_id")
    expected = {k: v for k, v in raw["payload"].items() if k in identifiers and isinstance(v, str)}
    assert payload.reference_keys == expected
