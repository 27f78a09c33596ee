"""SOAP bodies to canonical messages: a SOAP message and its REST twin are the same after mapping;
hostile XML is refused quickly; XSD errors name the element."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from psop_hub.hub.errors import ValidationFailed
from psop_hub.mappings.canonical import parse_message
from psop_hub.mappings.soap import soap_field, to_canonical, to_message
from psop_hub.mappings.xml import XmlRejected, parse_xml, schema_errors
from tests.messages import approval, granted

ENV = "http://schemas.xmlsoap.org/soap/envelope/"
NOW = datetime(2026, 11, 2, 6, 15, tzinfo=UTC)


def decision(inner: str, operation: str = "SubmitVoucherDecision", root: str = "VoucherDecision") -> bytes:
    """A SOAP envelope around one VoucherDecision (or ServiceOrder) body."""
    return (
        f'<soap:Envelope xmlns:soap="{ENV}" xmlns:t="urn:psop-hub:soap:v1"><soap:Body>'
        f"<t:{operation}><t:{root}>{inner}</t:{root}></t:{operation}></soap:Body></soap:Envelope>"
    ).encode()


GRANTED = (
    "<t:MessageId>m-1</t:MessageId><t:SentAt>2026-11-02T08:15:00+02:00</t:SentAt>"
    "<t:DecisionType>GRANTED</t:DecisionType><t:VoucherNumber>PS-1</t:VoucherNumber>"
    "<t:Organiser>2077474-0</t:Organiser><t:DecisionDate>2026-11-01</t:DecisionDate>"
    "<t:Client><t:Hetu>131052-308T</t:Hetu><t:HomeMunicipality>091</t:HomeMunicipality></t:Client>"
    "<t:Service><t:Code>KH01</t:Code><t:Name>Säännöllinen kotihoito</t:Name></t:Service>"
    "<t:Unit>hour</t:Unit><t:UnitValue>25.00</t:UnitValue><t:Quantity>100</t:Quantity>"
    "<t:ValidFrom>2026-11-01</t:ValidFrom><t:ValidTo>2027-12-31</t:ValidTo>"
)


def operation_of(body: bytes) -> object:
    """The operation element inside the SOAP Body."""
    return parse_xml(body)[0][0]


def test_soap_decision_and_its_rest_twin_are_the_same_canonical_message() -> None:
    soap = to_message("VoucherDecision", operation_of(decision(GRANTED)), NOW)
    rest = granted("PS-1")
    rest["message_id"] = "m-1"
    twin = parse_message(rest)
    assert soap.type == twin.type == "voucher.granted"
    assert soap.payload_json() == twin.payload_json()
    assert soap.sent_at == twin.sent_at


def test_missing_sent_at_defaults_to_now() -> None:
    op = operation_of(decision(GRANTED.replace("<t:SentAt>2026-11-02T08:15:00+02:00</t:SentAt>", "")))
    message = to_canonical("VoucherDecision", op[0], NOW)  # type: ignore[index]
    assert message["sent_at"] == NOW.isoformat()


def test_xsd_errors_name_the_element() -> None:
    body = GRANTED.replace("<t:UnitValue>25.00</t:UnitValue>", "<t:UnitValue>abc</t:UnitValue>").replace(
        "<t:Organiser>2077474-0</t:Organiser>", ""
    )
    with pytest.raises(ValidationFailed) as caught:
        to_message("VoucherDecision", operation_of(decision(body)))
    fields = {e.field for e in caught.value.errors}
    assert "VoucherDecision/UnitValue" in fields
    assert "VoucherDecision/Organiser" in fields


def test_an_element_the_type_does_not_use_is_refused() -> None:
    body = (
        "<t:MessageId>m-2</t:MessageId><t:DecisionType>AMENDED</t:DecisionType>"
        "<t:VoucherNumber>PS-1</t:VoucherNumber><t:Organiser>2077474-0</t:Organiser>"
        "<t:Client><t:Hetu>131052-308T</t:Hetu><t:HomeMunicipality>091</t:HomeMunicipality></t:Client>"
        "<t:Quantity>5</t:Quantity><t:Version>2</t:Version>"
    )
    op = operation_of(decision(body))
    assert schema_errors(op) == []
    with pytest.raises(ValidationFailed) as caught:
        to_canonical("VoucherDecision", op[0])  # type: ignore[index]
    assert [(e.field, e.message) for e in caught.value.errors] == [
        ("VoucherDecision/Client", "is not used with DecisionType AMENDED")
    ]


def test_canonical_error_paths_become_soap_paths() -> None:
    assert soap_field("VoucherDecision", "payload.client.hetu") == "VoucherDecision/Client/Hetu"
    assert soap_field("VoucherDecision", "payload.unit_value") == "VoucherDecision/UnitValue"
    assert soap_field("ServiceOrder", "payload.end_date") == "ServiceOrder/EndDate"
    assert soap_field("VoucherDecision", "message_id") == "VoucherDecision/MessageId"
    assert soap_field("ServiceOrder", "type") == "ServiceOrder/OrderType"


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;'
        b'&lol;&lol;&lol;&lol;&lol;">]><lolz>&lol2;</lolz>',
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><x>&xxe;</x>',
    ],
    ids=["billion-laughs", "external-entity"],
)
def test_dtds_are_refused_quickly(body: bytes) -> None:
    started = time.monotonic()
    with pytest.raises(XmlRejected, match="DTD"):
        parse_xml(body)
    assert time.monotonic() - started < 0.5


def test_deep_nesting_and_garbage_are_refused() -> None:
    with pytest.raises(XmlRejected):
        parse_xml(b"<a>" * 100_000 + b"</a>" * 100_000)
    with pytest.raises(XmlRejected, match="not well-formed"):
        parse_xml(b"<soap:Envelope")


def test_a_doctype_behind_a_long_prolog_is_still_refused() -> None:
    body = (
        b'<?xml version="1.0"?>\n<!--'
        + b"x" * 6000
        + b'-->\n<!DOCTYPE x SYSTEM "http://example.invalid/x.dtd">\n<x/>'
    )
    with pytest.raises(XmlRejected, match="DTD"):
        parse_xml(body)


APPROVAL = (
    "<t:MessageId>a-1</t:MessageId><t:SentAt>2026-11-02T08:15:00+02:00</t:SentAt>"
    "<t:Organiser>2077474-0</t:Organiser><t:Provider>1572860-0</t:Provider><t:Version>1</t:Version>"
    "<t:ServiceCode>KH01</t:ServiceCode><t:ServiceCode>KH02</t:ServiceCode>"
    "<t:ValidFrom>2026-01-01</t:ValidFrom><t:ValidTo>2026-12-31</t:ValidTo>"
)


def approval_body(inner: str) -> bytes:
    """A SOAP envelope around one ProviderApproval."""
    return decision(inner, "SubmitProviderApproval", "ProviderApproval")


def test_soap_approval_and_its_rest_twin_are_the_same_canonical_message() -> None:
    soap = to_message("ProviderApproval", operation_of(approval_body(APPROVAL)), NOW)
    rest = approval(service_codes=["KH01", "KH02"], valid_to="2026-12-31")
    rest["message_id"] = "a-1"
    twin = parse_message(rest)
    assert soap.type == twin.type == "provider.approved"
    assert soap.payload_json() == twin.payload_json()
    assert soap.message_id == "a-1"


def test_an_approval_without_service_codes_approves_every_service() -> None:
    inner = APPROVAL.replace("<t:ServiceCode>KH01</t:ServiceCode><t:ServiceCode>KH02</t:ServiceCode>", "")
    message = to_message("ProviderApproval", operation_of(approval_body(inner)), NOW)
    assert "service_codes" not in message.payload_json()
    assert message.payload.service_codes is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("old", "new", "field", "words"),
    [
        (
            "<t:ServiceCode>KH02</t:ServiceCode>",
            "<t:ServiceCode>KH01</t:ServiceCode>",
            "ProviderApproval/ServiceCode",
            "more than once",
        ),
        ("<t:Version>1</t:Version>", "<t:Version>0</t:Version>", "ProviderApproval/Version", ""),
        ("<t:Version>1</t:Version>", "", "ProviderApproval/Version", "required"),
        (
            "<t:ValidTo>2026-12-31</t:ValidTo>",
            "<t:ValidTo>2025-12-31</t:ValidTo>",
            "ProviderApproval/ValidTo",
            "before",
        ),
        (
            "<t:Provider>1572860-0</t:Provider>",
            "<t:Provider>1572860-1</t:Provider>",
            "ProviderApproval/Provider",
            "check digit",
        ),
        ("<t:MessageId>a-1</t:MessageId>", "", "ProviderApproval/MessageId", "required"),
    ],
)
def test_approval_errors_name_the_soap_element(old: str, new: str, field: str, words: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        to_message("ProviderApproval", operation_of(approval_body(APPROVAL.replace(old, new))), NOW)
    errors = {e.field: e.message for e in caught.value.errors}
    assert field in errors, errors
    assert words in errors[field]


def test_approval_service_code_paths_are_counted_from_one() -> None:
    assert soap_field("ProviderApproval", "payload.service_codes") == "ProviderApproval/ServiceCode"
    assert soap_field("ProviderApproval", "payload.service_codes.1") == "ProviderApproval/ServiceCode[2]"
    assert soap_field("ProviderApproval", "payload.valid_to") == "ProviderApproval/ValidTo"
    assert soap_field("ProviderApproval", "type") == "ProviderApproval"
