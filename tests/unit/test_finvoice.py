"""The Finvoice 3.0 invoice of a settlement, built from a hand-made view and checked element by
element and sum by sum; the party checks of `psop_hub.hub.parties` without a database."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from psop_hub.adapters.finvoice import UNIT_CODES, build_invoice, invoice_path
from psop_hub.hub.errors import InvalidInput, InvoiceNotPossible
from psop_hub.hub.identifiers import finnish_reference, is_valid_finnish_reference
from psop_hub.hub.parties import Party, normalised
from psop_hub.mappings.fields import UNITS

ORGANISER = "2077474-0"
PROVIDER = "1572860-0"
SETTLEMENT_ID = "PS-20774740-15728600-202611"
REFERENCE = finnish_reference("202611000042")
INVOICE_DATE = date(2026, 12, 1)
SELLER = Party(
    PROVIDER, "Hoivapalvelu Aurinko Oy", "Kauppakatu 5", "00100", "Helsinki", "FI2112345600000785", "NDEAFIHH"
)
BUYER = Party(
    ORGANISER, "Länsi-Uudenmaan hyvinvointialue", "Kirkkokatu 1", "02100", "Espoo", None, "OKOYFIHH"
)
AMOUNT = re.compile(r"-?[0-9]+,[0-9]{2}")


def row(
    number: int, kind: str, code: str, name: str, unit: str, price: str, qty: str, amount: str
) -> dict[str, Any]:
    """A settlement row as `settlement_view` shows it."""
    return {
        "row_number": number,
        "kind": kind,
        "service": {"code": code, "name": name},
        "unit": unit,
        "unit_price": price,
        "quantity": qty,
        "amount": amount,
    }


ROWS = [
    row(1, "delivery", "FYS01", "Fysioterapia", "visit", "48.90", "3.00", "146.70"),
    row(2, "delivery", "KH01", "Säännöllinen kotihoito", "hour", "25.00", "10.50", "262.50"),
    row(3, "adjustment", "KH01", "Säännöllinen kotihoito", "hour", "25.00", "-1.25", "-31.25"),
]
TOTAL = D("377.95")


def view(rows: list[dict[str, Any]] | None = None, amount: str | None = None) -> dict[str, Any]:
    """A settlement view as `settlement_view` returns it."""
    rows = ROWS if rows is None else rows
    total = sum((D(r["amount"]) for r in rows), D("0.00"))
    return {
        "settlement_id": SETTLEMENT_ID,
        "organiser": ORGANISER,
        "provider": PROVIDER,
        "month": "2026-11",
        "reference": REFERENCE,
        "amount": amount or format(total, "f"),
        "status": "open",
        "paid_date": None,
        "paid_amount": None,
        "payment_reference": None,
        "rows": rows,
        "created_at": "2026-12-01T06:00:00.123456+00:00",
    }


def build(seller: Party = SELLER, buyer: Party = BUYER, **kw: Any) -> bytes:
    """The invoice of the standard view."""
    return build_invoice(kw.pop("v", None) or view(), seller, buyer, invoice_date=INVOICE_DATE, **kw)


@pytest.fixture(scope="module")
def doc() -> Any:
    """The standard invoice, parsed."""
    return etree.fromstring(build())


def text(node: Any, path: str) -> str:
    """The text of the one element at `path`."""
    found = node.findall(path)
    assert len(found) == 1, f"{path}: {len(found)} elements"
    return str(found[0].text)


def euros(value: str) -> D:
    """A Finvoice amount (`1234,50`) as a Decimal, after checking its form."""
    assert AMOUNT.fullmatch(value), value
    return D(value.replace(",", "."))


def test_root_declaration_and_encoding() -> None:
    data = build()
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<Finvoice ')
    assert "Säännöllinen kotihoito".encode() in data  # UTF-8, not ISO-8859-15
    root = etree.fromstring(data)
    assert root.tag == "Finvoice"
    assert root.get("Version") == "3.0"
    xsi = "{http://www.w3.org/2001/XMLSchema-instance}noNamespaceSchemaLocation"
    assert root.get(xsi) == "Finvoice3.0.xsd"


def test_top_level_elements_in_schema_order(doc: Any) -> None:
    assert [child.tag for child in doc] == [
        "MessageTransmissionDetails",
        "SellerPartyDetails",
        "SellerInformationDetails",
        "BuyerPartyDetails",
        "InvoiceDetails",
        "InvoiceRow",
        "InvoiceRow",
        "InvoiceRow",
        "EpiDetails",
    ]


def test_message_transmission_details(doc: Any) -> None:
    frame = doc.find("MessageTransmissionDetails")
    sender, receiver = frame.find("MessageSenderDetails"), frame.find("MessageReceiverDetails")
    assert text(sender, "FromIdentifier") == "003715728600"  # OVT: 0037 + the business ID's digits
    assert sender.find("FromIdentifier").get("SchemeID") == "0037"
    assert text(sender, "FromIntermediator") == "NDEAFIHH"
    assert text(receiver, "ToIdentifier") == "003720774740"
    assert text(receiver, "ToIntermediator") == "OKOYFIHH"
    assert text(frame, "MessageDetails/MessageIdentifier") == SETTLEMENT_ID
    assert text(frame, "MessageDetails/MessageTimeStamp") == "2026-12-01T00:00:00+02:00"


def test_without_organiser_bic_the_frame_is_left_out() -> None:
    root = etree.fromstring(build(buyer=replace(BUYER, bic=None)))
    assert root.find("MessageTransmissionDetails") is None
    assert root[0].tag == "SellerPartyDetails"
    assert text(root, "EpiDetails/EpiPaymentInstructionDetails/EpiInstructedAmount") == "377,95"


@pytest.mark.parametrize(("prefix", "party"), [("Seller", SELLER), ("Buyer", BUYER)])
def test_parties(doc: Any, prefix: str, party: Party) -> None:
    details = doc.find(f"{prefix}PartyDetails")
    assert text(details, f"{prefix}PartyIdentifier") == party.business_id
    assert text(details, f"{prefix}OrganisationName") == party.name
    address = [(c.tag, c.text) for c in details.find(f"{prefix}PostalAddressDetails")]
    assert address == [
        (f"{prefix}StreetName", party.street),
        (f"{prefix}TownName", party.town),
        (f"{prefix}PostCodeIdentifier", party.postcode),
        ("CountryCode", "FI"),
    ]


def test_seller_account(doc: Any) -> None:
    account = doc.find("SellerInformationDetails/SellerAccountDetails")
    assert [(c.tag, c.get("IdentificationSchemeName"), c.text) for c in account] == [
        ("SellerAccountID", "IBAN", "FI2112345600000785"),
        ("SellerBic", "BIC", "NDEAFIHH"),
    ]


def test_invoice_details(doc: Any) -> None:
    d = doc.find("InvoiceDetails")
    assert text(d, "InvoiceTypeCode") == "INV01"
    assert text(d, "InvoiceTypeCodeUN") == "380"
    assert text(d, "InvoiceTypeText") == "LASKU"
    assert text(d, "OriginCode") == "Original"
    # InvoiceNumber is at most 20 characters: the reference number; the settlement id rides along.
    assert text(d, "InvoiceNumber") == REFERENCE
    assert text(d, "SellerReferenceIdentifier") == SETTLEMENT_ID
    assert SETTLEMENT_ID in text(d, "InvoiceFreeText")
    for path, value in [
        ("InvoiceDate", "20261201"),
        ("InvoicingPeriodStartDate", "20261101"),
        ("InvoicingPeriodEndDate", "20261130"),
        ("PaymentTermsDetails/InvoiceDueDate", "20261215"),
    ]:
        assert text(d, path) == value
        assert d.find(path).get("Format") == "CCYYMMDD"
    assert text(d, "PaymentTermsDetails/PaymentTermsFreeText") == "14 pv netto"
    for tag in ("InvoiceTotalVatExcludedAmount", "InvoiceTotalVatAmount", "InvoiceTotalVatIncludedAmount"):
        assert d.find(tag).get("AmountCurrencyIdentifier") == "EUR"


def test_vat_is_exempt_zero(doc: Any) -> None:
    vat = doc.find("InvoiceDetails/VatSpecificationDetails")
    assert [c.tag for c in vat] == [
        "VatBaseAmount",
        "VatRatePercent",
        "VatCode",
        "VatRateAmount",
        "VatFreeText",
        "VatExemptionReasonCode",
    ]
    assert (text(vat, "VatRatePercent"), text(vat, "VatCode"), text(vat, "VatRateAmount")) == (
        "0",
        "E",
        "0,00",
    )
    assert "AVL" in text(vat, "VatFreeText") and len(text(vat, "VatFreeText")) <= 70
    assert text(vat, "VatExemptionReasonCode") == "VATEX-EU-132"


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        (0, ("FYS01", "Fysioterapia", "3,00", "krt", "C62", "48,90", "146,70")),
        (1, ("KH01", "Säännöllinen kotihoito", "10,50", "h", "HUR", "25,00", "262,50")),
        (2, ("KH01", "Säännöllinen kotihoito (oikaisu)", "-1,25", "h", "HUR", "25,00", "-31,25")),
    ],
)
def test_rows(doc: Any, index: int, expected: tuple[str, ...]) -> None:
    r = doc.findall("InvoiceRow")[index]
    code, name, qty, unit, unit_un, price, amount = expected
    assert text(r, "ArticleIdentifier") == code
    assert text(r, "ArticleName") == name
    for tag in ("DeliveredQuantity", "InvoicedQuantity"):
        assert text(r, tag) == qty
        assert r.find(tag).get("QuantityUnitCode") == unit
        assert r.find(tag).get("QuantityUnitCodeUN") == unit_un
    assert text(r, "UnitPriceAmount") == price
    assert r.find("UnitPriceAmount").get("AmountCurrencyIdentifier") == "EUR"
    assert text(r, "RowPositionIdentifier") == str(index + 1)
    assert (text(r, "RowVatRatePercent"), text(r, "RowVatCode"), text(r, "RowVatAmount")) == (
        "0",
        "E",
        "0,00",
    )
    assert text(r, "RowVatExcludedAmount") == amount
    assert text(r, "RowAmount") == amount
    assert r.find("RowAmount").get("AmountCurrencyIdentifier") == "EUR"
    # Element order as the schema has it.
    tags = [c.tag for c in r]
    assert tags.index("ArticleName") < tags.index("DeliveredQuantity") < tags.index("InvoicedQuantity")
    assert (
        tags.index("UnitPriceAmount") < tags.index("RowPositionIdentifier") < tags.index("RowVatRatePercent")
    )
    assert tags[-5:] == [
        "RowVatRatePercent",
        "RowVatCode",
        "RowVatAmount",
        "RowVatExcludedAmount",
        "RowAmount",
    ]


def test_only_adjustments_say_so(doc: Any) -> None:
    rows = doc.findall("InvoiceRow")
    assert [r.find("RowFreeText") is not None for r in rows] == [False, False, True]


def test_sums_to_the_cent(doc: Any) -> None:
    rows = sum((euros(text(r, "RowAmount")) for r in doc.findall("InvoiceRow")), D("0.00"))
    d = doc.find("InvoiceDetails")
    epi = doc.find("EpiDetails/EpiPaymentInstructionDetails")
    assert rows == TOTAL
    assert euros(text(d, "RowsTotalVatExcludedAmount")) == rows
    assert euros(text(d, "InvoiceTotalVatExcludedAmount")) == rows
    assert euros(text(d, "InvoiceTotalVatIncludedAmount")) == rows
    assert euros(text(d, "VatSpecificationDetails/VatBaseAmount")) == rows
    assert euros(text(epi, "EpiInstructedAmount")) == rows
    assert text(d, "InvoiceTotalVatAmount") == "0,00"
    assert text(d, "InvoiceTotalVatIncludedAmount") == "377,95"


def test_payment_details(doc: Any) -> None:
    epi = doc.find("EpiDetails")
    assert text(epi, "EpiIdentificationDetails/EpiDate") == "20261201"
    assert epi.find("EpiIdentificationDetails/EpiDate").get("Format") == "CCYYMMDD"
    assert text(epi, "EpiIdentificationDetails/EpiReference") == SETTLEMENT_ID
    bank = epi.find("EpiPartyDetails/EpiBfiPartyDetails/EpiBfiIdentifier")
    assert (bank.get("IdentificationSchemeName"), bank.text) == ("BIC", "NDEAFIHH")
    beneficiary = epi.find("EpiPartyDetails/EpiBeneficiaryPartyDetails")
    assert text(beneficiary, "EpiNameAddressDetails") == "Hoivapalvelu Aurinko Oy"
    assert text(beneficiary, "EpiBei") == PROVIDER
    account = beneficiary.find("EpiAccountID")
    assert (account.get("IdentificationSchemeName"), account.text) == ("IBAN", "FI2112345600000785")
    payment = epi.find("EpiPaymentInstructionDetails")
    remittance = payment.find("EpiRemittanceInfoIdentifier")
    assert (remittance.get("IdentificationSchemeName"), remittance.text) == ("SPY", REFERENCE)
    assert is_valid_finnish_reference(remittance.text)
    assert payment.find("EpiInstructedAmount").get("AmountCurrencyIdentifier") == "EUR"
    charge = payment.find("EpiCharge")
    assert (charge.get("ChargeOption"), charge.text) == ("SHA", "SHA")
    assert text(payment, "EpiDateOptionDate") == "20261215"
    assert payment.find("EpiDateOptionDate").get("Format") == "CCYYMMDD"
    assert [c.tag for c in payment] == [
        "EpiRemittanceInfoIdentifier",
        "EpiInstructedAmount",
        "EpiCharge",
        "EpiDateOptionDate",
        "EpiPaymentMeansCode",
    ]


def test_deterministic() -> None:
    assert build() == build()
    assert build() == build_invoice(view(), SELLER, BUYER, invoice_date=INVOICE_DATE, due_days=14)
    assert build() != build_invoice(view(), SELLER, BUYER, invoice_date=date(2026, 12, 2))


def test_due_days() -> None:
    root = etree.fromstring(build(due_days=30))
    assert text(root, "InvoiceDetails/PaymentTermsDetails/InvoiceDueDate") == "20261231"
    assert text(root, "EpiDetails/EpiPaymentInstructionDetails/EpiDateOptionDate") == "20261231"
    with pytest.raises(ValueError, match="due_days"):
        build(due_days=-1)


@pytest.mark.parametrize("unit", UNITS)
def test_every_hub_unit_has_a_finnish_code(unit: str) -> None:
    r = row(1, "delivery", "X1", "Palvelu", unit, "10.00", "2.00", "20.00")
    root = etree.fromstring(build(v=view([r])))
    assert root.find("InvoiceRow/DeliveredQuantity").get("QuantityUnitCode") == UNIT_CODES[unit][0]
    assert {u: c for u, (c, _) in UNIT_CODES.items()} == {
        "hour": "h",
        "visit": "krt",
        "day": "pv",
        "month": "kk",
        "piece": "kpl",
    }


def test_an_adjustment_names_its_service_month() -> None:
    rows = [
        {
            **row(1, "delivery", "KH01", "Kotihoito", "hour", "25.00", "2.00", "50.00"),
            "service_month": "2026-11",
        },
        {
            **row(2, "adjustment", "KH01", "Kotihoito", "hour", "25.00", "1.00", "25.00"),
            "service_month": "2026-10",
        },
    ]
    root = etree.fromstring(build(v=view(rows)))
    free = [r.findtext("RowFreeText") for r in root.findall("InvoiceRow")]
    assert free == [None, "Oikaisu tai myöhässä ilmoitettu toteuma, palvelukuukausi 10/2026"]
    assert len(free[1] or "") <= 512  # the schema's limit of RowFreeText


def test_long_names_fit_the_schema() -> None:
    long = "Erittäin pitkänimisen yksityisen sosiaali- ja terveyspalvelujen tuottajan osakeyhtiö Oy"
    r = row(1, "adjustment", "X1", "Palvelu " * 20, "hour", "10.00", "2.00", "20.00")
    root = etree.fromstring(build(seller=replace(SELLER, name=long), v=view([r])))
    names = [e.text for e in root.findall("SellerPartyDetails/SellerOrganisationName")]
    assert " ".join(names) == long and all(len(n) <= 70 for n in names)
    article = text(root, "InvoiceRow/ArticleName")
    assert len(article) <= 100 and article.endswith(" (oikaisu)")
    assert (
        len(text(root, "EpiDetails/EpiPartyDetails/EpiBeneficiaryPartyDetails/EpiNameAddressDetails")) <= 35
    )


@pytest.mark.parametrize(
    ("seller", "buyer", "message"),
    [
        (
            replace(SELLER, iban=None),
            BUYER,
            f"provider {PROVIDER} has no IBAN: hub parties set {PROVIDER} --iban",
        ),
        (
            replace(SELLER, bic=None),
            BUYER,
            f"provider {PROVIDER} has no BIC: hub parties set {PROVIDER} --bic",
        ),
        (replace(SELLER, iban=None, bic=None), BUYER, "has no IBAN and no BIC: .* --iban ... --bic ..."),
        (SELLER, replace(BUYER, street="", town=""), f"organiser {ORGANISER} has no street and no town"),
        (replace(SELLER, postcode=""), BUYER, f"provider {PROVIDER} has no postcode: .* --postcode"),
        (replace(SELLER, business_id="0201256-6"), BUYER, "seller 0201256-6 is not provider"),
        (SELLER, replace(BUYER, business_id="0201256-6"), "buyer 0201256-6 is not organiser"),
    ],
)
def test_missing_or_wrong_party_data(seller: Party, buyer: Party, message: str) -> None:
    with pytest.raises(InvoiceNotPossible, match=message):
        build(seller=seller, buyer=buyer)


@pytest.mark.parametrize(
    "rows",
    [
        [row(1, "adjustment", "KH01", "Kotihoito", "hour", "25.00", "-2.00", "-50.00")],
        [
            row(1, "delivery", "KH01", "Kotihoito", "hour", "25.00", "1.00", "25.00"),
            row(2, "adjustment", "KH01", "Kotihoito", "hour", "25.00", "-1.00", "-25.00"),
        ],
        [],
    ],
)
def test_non_positive_total_needs_a_credit_note(rows: list[dict[str, Any]]) -> None:
    with pytest.raises(InvoiceNotPossible, match=r"credit note \(INV02\), which is not supported yet"):
        build(v=view(rows))


def test_rows_must_sum_to_the_settlement_amount() -> None:
    with pytest.raises(InvoiceNotPossible, match=r"sum to 377\.95, its amount is 377\.96"):
        build(v=view(amount="377.96"))


def test_invalid_reference_or_unit_is_refused() -> None:
    with pytest.raises(InvoiceNotPossible, match="no valid Finnish reference"):
        build(v={**view(), "reference": REFERENCE[:-1] + str((int(REFERENCE[-1]) + 1) % 10)})
    with pytest.raises(InvoiceNotPossible, match="unit 'week'"):
        build(v=view([row(1, "delivery", "X", "X", "week", "1.00", "1.00", "1.00")]))


def test_invoice_path() -> None:
    assert invoice_path(Path("/data"), ORGANISER, SETTLEMENT_ID) == Path(
        f"/data/outbox/{ORGANISER}/invoices/{SETTLEMENT_ID}.xml"
    )
    for bad in ("../x", ".hidden", "a/b", ""):
        with pytest.raises(InvoiceNotPossible, match="file name"):
            invoice_path(Path("/data"), ORGANISER, bad)


def test_party_is_normalised() -> None:
    p = normalised(
        Party(
            "15728600",
            "  Hoivapalvelu   Oy ",
            " Katu 1 ",
            "00100",
            "Helsinki",
            "fi21 1234 5600 0007 85",
            "ndeafihh",
        )
    )
    assert p == Party(
        "1572860-0", "Hoivapalvelu Oy", "Katu 1", "00100", "Helsinki", "FI2112345600000785", "NDEAFIHH"
    )
    assert normalised(Party(ORGANISER, "Alue", "", "", "", "", " ")) == Party(
        ORGANISER, "Alue", "", "", "", None, None
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"business_id": "1572860-1"}, "business_id"),
        ({"iban": "FI21 1234 5600 0007 86"}, "iban"),
        ({"bic": "NDEAFIH"}, "bic"),
        ({"bic": "NDEA1IHH"}, "bic"),
        ({"postcode": "1234"}, "postcode"),
        ({"name": " "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"street": "x" * 36}, "street"),
        ({"town": "x"}, "town"),
    ],
)
def test_party_checks_name_the_field(change: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidInput, match=f"^{field} "):
        normalised(replace(SELLER, **change))
