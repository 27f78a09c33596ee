"""SOAP and XML batch errors point at the right element and say in plain words what is allowed,
read from the XSD: unknown, misplaced, repeated and missing elements each at their own path."""

from __future__ import annotations

import pytest

from psop_hub.hub.errors import FieldError, ValidationFailed
from psop_hub.mappings.schemamodel import model_of, value_message
from psop_hub.mappings.soap import soap_errors, soap_text, to_message
from psop_hub.mappings.xml import XSD_FILE, parse_xml
from tests.unit.test_soap_mapping import GRANTED, decision

HETU = "131052-308T"


def errors_of(inner: str) -> list[tuple[str, str]]:
    """The (field, message) pairs of a SubmitVoucherDecision around `inner`."""
    operation = parse_xml(decision(inner))[0][0]
    with pytest.raises(ValidationFailed) as caught:
        to_message("VoucherDecision", operation)
    return [(e.field, e.message) for e in caught.value.errors]


def test_the_model_is_read_from_the_xsd() -> None:
    model = model_of(XSD_FILE)
    parts = model.sequences["VoucherDecision"]
    assert [p.name for p in parts][:6] == [
        "MessageId",
        "SentAt",
        "CorrelationId",
        "DecisionType",
        "VoucherNumber",
        "Organiser",
    ]
    assert {p.name: (p.min, p.max) for p in parts}["Organiser"] == (1, 1)
    approval = {p.name: (p.min, p.max) for p in model.sequences["ProviderApproval"]}
    assert approval["ServiceCode"] == (0, None)
    assert model.simple["Unit"].enumeration == ("hour", "visit", "day", "month", "piece")
    assert model.elements["SubmitVoucherDecision"] == "element:SubmitVoucherDecision"


def test_an_unknown_element_is_itself_the_error_and_nothing_is_blamed_on_the_next() -> None:
    errors = errors_of(GRANTED.replace("<t:Quantity>", "<t:Colour>red</t:Colour><t:Quantity>"))
    assert errors == [
        (
            "VoucherDecision/Colour",
            "is not an element of VoucherDecision (the XSD, /soap/v1?xsd, lists its elements in order)",
        )
    ]


def test_an_unknown_element_and_a_missing_one_are_both_reported() -> None:
    inner = GRANTED.replace("<t:Organiser>2077474-0</t:Organiser>", "").replace(
        "</t:Client>", "<t:Colour>red</t:Colour></t:Client>"
    )
    assert sorted(errors_of(inner)) == [
        (
            "VoucherDecision/Client/Colour",
            "is not an element of Client, which holds Hetu and HomeMunicipality",
        ),
        ("VoucherDecision/Organiser", "is required"),
    ]


def test_only_the_misplaced_element_is_blamed() -> None:
    moved = GRANTED.replace("<t:DecisionDate>2026-11-01</t:DecisionDate>", "").replace(
        "<t:ValidTo>", "<t:DecisionDate>2026-11-01</t:DecisionDate><t:ValidTo>"
    )
    assert errors_of(moved) == [
        ("VoucherDecision/DecisionDate", "is out of order: it comes after Organiser and before Client")
    ]


def test_a_repeated_element_a_wrong_case_and_a_wrong_namespace_are_told_apart() -> None:
    repeated = GRANTED.replace("<t:Unit>hour</t:Unit>", "<t:Unit>hour</t:Unit><t:Unit>day</t:Unit>")
    assert errors_of(repeated) == [("VoucherDecision/Unit", "may appear only once")]
    cased = GRANTED.replace("<t:UnitValue>25.00</t:UnitValue>", "<t:unitValue>25.00</t:unitValue>")
    assert errors_of(cased) == [
        (
            "VoucherDecision/unitValue",
            "is not an element of VoucherDecision: the name is UnitValue (names are case-sensitive)",
        ),
    ]
    foreign = GRANTED.replace("<t:Unit>hour</t:Unit>", '<o:Unit xmlns:o="urn:example:o">hour</o:Unit>')
    assert errors_of(foreign) == [
        (
            "VoucherDecision/Unit",
            "is in the namespace urn:example:o: the elements of a VoucherDecision are in "
            "urn:psop-hub:soap:v1",
        )
    ]


def test_text_where_elements_belong_is_named_without_repeating_it() -> None:
    inner = GRANTED.replace(
        f"<t:Client><t:Hetu>{HETU}</t:Hetu><t:HomeMunicipality>091</t:HomeMunicipality></t:Client>",
        f"<t:Client>{HETU}</t:Client>",
    )
    errors = errors_of(inner)
    assert ("VoucherDecision/Client", "must hold elements (Hetu and HomeMunicipality), not text") in errors
    assert ("VoucherDecision/Client/Hetu", "is required") in errors
    assert HETU not in repr(errors)


@pytest.mark.parametrize(
    ("type_key", "text", "message"),
    [
        ("Unit", "Hour", "must be one of hour, visit, day, month, piece"),
        ("DecisionType", "granted", "must be one of GRANTED, AMENDED, REVOKED, ASSIGNED"),
        ("Money", "abc", "must be a decimal with a point, e.g. 32.50"),
        ("Money", "1e3", "must be a decimal with a point, e.g. 32.50"),
        ("Money", "3.505", "must have at most two decimals, e.g. 32.50"),
        ("Money", "-0.01", "must not be negative"),
        ("Quantity", "0.00", "must be greater than zero"),
        ("Quantity", "x", "must be a decimal with a point, e.g. 7.5"),
        ("ApprovalVersion", "0", "must be at least 1"),
        ("ApprovalVersion", "1.5", "must be a whole number, e.g. 2"),
        ("xsd:int", "99999999999", "must be at most 2147483647"),
        ("xsd:date", "2026-02-30", "is not a valid calendar date"),
        ("xsd:date", "30.1.2026", "must be a date YYYY-MM-DD, e.g. 2026-11-01"),
        (
            "xsd:dateTime",
            "2026-11-02 08:15",
            "must be a date and time with its UTC offset, e.g. 2026-11-02T08:15:00+02:00",
        ),
        ("Identifier", "", "must not be empty"),
        ("Identifier", "x" * 101, "must be at most 100 characters long"),
        ("ServiceCode", "x" * 51, "must be at most 50 characters long"),
    ],
)
def test_value_messages_come_from_the_type(type_key: str, text: str, message: str) -> None:
    assert value_message(model_of(XSD_FILE), type_key, text) == message


def test_rest_names_in_messages_and_stored_errors_become_soap_names() -> None:
    assert soap_text("must not be before valid_from") == "must not be before ValidFrom"
    assert soap_text("the provider_price of unit_value 2 and service_codes") == (
        "the ProviderPrice of UnitValue 2 and ServiceCode"
    )
    assert (
        soap_text("approved_provider: a plain rule name stays")
        == "approved_provider: a plain rule name stays"
    )
    stored = [
        {"field": "payload.valid_to", "message": "valid_to 2026-10-01 is before the voucher's valid_from"},
        {"field": "payload.client.hetu", "message": "has a wrong check character"},
        {"field": "", "message": "voucher V-1 has not arrived"},
    ]
    assert soap_errors("voucher.amended", stored) == [
        FieldError("VoucherDecision/ValidTo", "ValidTo 2026-10-01 is before the voucher's ValidFrom"),
        FieldError("VoucherDecision/Client/Hetu", "has a wrong check character"),
        FieldError("VoucherDecision", "voucher V-1 has not arrived"),
    ]
    assert soap_errors("order.ended", [{"field": "payload.end_date", "message": "x"}]) == [
        FieldError("ServiceOrder/EndDate", "x")
    ]
    assert soap_errors("provider.approved", [{"field": "payload.service_codes.1", "message": "x"}]) == [
        FieldError("ProviderApproval/ServiceCode[2]", "x")
    ]
    # a delivery has no SOAP form: its contract's names stay
    assert soap_errors("delivery.reported", [{"field": "payload.quantity", "message": "x"}]) == [
        FieldError("payload.quantity", "x")
    ]
