"""Invoicing details as the API and the CLI give them: every bad field at once, python-stdnum's
checks for the Y-tunnus, IBAN and BIC, what an invoice still needs, and who may set them."""

from __future__ import annotations

import pytest

from psop_hub.hub.errors import InvalidInput
from psop_hub.hub.parties import Party, missing_details, normalised, party_from_json
from psop_hub.hub.senders import Sender, may_manage_party
from tests.messages import ORGANISER, OTHER_ORGANISER, OTHER_PROVIDER, PROVIDER

GOOD = {
    "name": "Hoivapalvelu Onnela Oy",
    "street": "Kauppakatu 12",
    "postcode": "40100",
    "town": "Jyväskylä",
    "iban": "FI21 1234 5600 0007 85",
    "bic": "ndeafihh",
}


def fields(caught: pytest.ExceptionInfo[InvalidInput]) -> list[str]:
    """The fields an InvalidInput names, in order."""
    return [e.field for e in caught.value.errors]


def test_a_good_body_is_stored_normalised() -> None:
    party = party_from_json(PROVIDER.replace("-", ""), {**GOOD, "street": "  Kauppakatu   12 "})
    assert party == Party(
        PROVIDER,
        "Hoivapalvelu Onnela Oy",
        "Kauppakatu 12",
        "40100",
        "Jyväskylä",
        "FI2112345600000785",
        "NDEAFIHH",
    )


def test_only_the_name_is_required() -> None:
    assert party_from_json(ORGANISER, {"name": "Keski-Suomen hyvinvointialue"}) == Party(
        ORGANISER, "Keski-Suomen hyvinvointialue", "", "", "", None, None
    )
    assert party_from_json(ORGANISER, {"name": "Hva", "iban": None, "bic": ""}).iban is None


def test_every_bad_field_is_reported_at_once() -> None:
    body = {
        "name": "",
        "street": 12,
        "postcode": "401",
        "town": "T" * 36,
        "iban": "FI21 1234 5600 0007 86",  # check digits wrong
        "bic": "NDEAFI",  # six characters
        "colour": "red",
    }
    with pytest.raises(InvalidInput) as caught:
        party_from_json("2077474-1", body)  # check digit wrong
    assert sorted(fields(caught)) == sorted(
        ["colour", "business_id", "name", "street", "postcode", "town", "iban", "bic"]
    )
    messages = {e.field: e.message for e in caught.value.errors}
    assert "not a valid IBAN" in messages["iban"] and "not a valid BIC" in messages["bic"]
    assert "Y-tunnus" in messages["business_id"] and "five digits" in messages["postcode"]
    assert messages["street"] == "street must be a string"
    assert str(caught.value).count("; ") == 7  # the CLI prints every reason too


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "name", "name is required"),
        ({"name": None}, "name", "name must be a string"),
        ({"name": "Oy", "iban": 5}, "iban", "iban must be a string or null"),
        ({"name": "Oy", "business_id": OTHER_PROVIDER}, "business_id", "the one in the path"),
        ({"name": "Oy", "bic": "NDEAFIHH1"}, "bic", "8 or 11 characters"),
        ({"name": "Oy", "iban": "FI21 1234"}, "iban", "not a valid IBAN"),
        ({"name": "O"}, "name", "2-200 characters"),
    ],
)
def test_one_bad_field(body: dict[str, object], field: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        party_from_json(PROVIDER, body)
    assert fields(caught) == [field]
    assert message in caught.value.errors[0].message


def test_the_body_must_be_an_object() -> None:
    with pytest.raises(InvalidInput) as caught:
        party_from_json(PROVIDER, ["name"])
    assert fields(caught) == ["body"]


def test_the_business_id_may_be_repeated_in_the_body() -> None:
    assert party_from_json(PROVIDER, {"name": "Oy Ab", "business_id": PROVIDER}).business_id == PROVIDER


def test_normalised_lists_every_bad_field() -> None:
    with pytest.raises(InvalidInput) as caught:
        normalised(Party("1234567-8", "Hoiva Oy", "", "0010", "", "FI00", "X"))
    assert fields(caught) == ["business_id", "postcode", "iban", "bic"]


def test_missing_details_as_seller_and_buyer() -> None:
    full = party_from_json(PROVIDER, GOOD)
    assert missing_details(full, seller=True) == ()
    assert missing_details(Party(ORGANISER, "Hva", "Tie 1", "00100", "Helsinki"), seller=False) == ()
    assert missing_details(Party(ORGANISER, "Hva", "Tie 1", "00100", "Helsinki"), seller=True) == (
        "iban",
        "bic",
    )
    assert missing_details(Party(PROVIDER, "Oy", "", "00100", "", "FI2112345600000785"), seller=True) == (
        "bic",
        "street",
        "town",
    )
    assert missing_details(None, seller=False) == ("name", "street", "postcode", "town")


@pytest.mark.parametrize(
    ("sender", "business_id", "allowed"),
    [
        (Sender("admin", "admin", (), None), PROVIDER, True),
        (Sender("admin", "admin", (), None), ORGANISER, True),
        (Sender("p", "provider", (), PROVIDER), PROVIDER, True),
        (Sender("p", "provider", (), PROVIDER), OTHER_PROVIDER, False),
        (Sender("p", "provider", (), PROVIDER), ORGANISER, False),
        (Sender("s", "system", (ORGANISER,), None), ORGANISER, True),
        (Sender("s", "system", (ORGANISER,), None), OTHER_ORGANISER, False),
        (Sender("s", "system", (ORGANISER,), None), PROVIDER, False),
        (Sender("odd", "system", (), None), ORGANISER, False),
        (Sender("shared", "system", (OTHER_ORGANISER, ORGANISER), None), ORGANISER, True),
        (Sender("shared", "system", (OTHER_ORGANISER, ORGANISER), None), OTHER_ORGANISER, True),
        (Sender("shared", "system", (OTHER_ORGANISER, ORGANISER), None), PROVIDER, False),
    ],
)
def test_who_may_manage_a_party(sender: Sender, business_id: str, allowed: bool) -> None:
    assert may_manage_party(sender, business_id) is allowed
