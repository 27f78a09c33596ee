"""Outbound Finvoice 3.0: the purchase invoice of a settlement, in the organiser's outbox.

`build_invoice` turns a settlement view (`settlement_view`) and the two parties into a Finvoice 3.0
document: seller = the provider, buyer = the organiser, one `InvoiceRow` per settlement row.
`write_invoice` writes it atomically to `outbox/<organiser>/invoices/<settlement_id>.xml`.

Choices the contract leaves open (element order follows the Finvoice 3.0 schema):

- encoding UTF-8, which Finvoice 3.0 allows (ISO-8859-15 is the older habit), with a declaration;
- `InvoiceNumber` is the settlement's reference number: the schema allows 1-20 characters, a
  settlement id has 27. The settlement id is `SellerReferenceIdentifier`, `EpiReference`,
  `MessageIdentifier` (when there is a frame), the invoice's free text and the file name;
- VAT: social and health services are exempt (AVL 34 and 37 §), so every row is 0 % with the
  UNTDID 5305 category `E` ("exempt from tax"; `Z` would be a zero-rated taxable supply), and the
  VAT breakdown carries the exemption text and the code `VATEX-EU-132`;
- `MessageTransmissionDetails` (routing): the addresses are OVT codes (`0037` + business ID
  digits), the intermediators the parties' BICs, as in the banks' e-invoice network. The schema
  requires both intermediators, so without an organiser BIC the frame is left out and routing is
  left to whoever forwards the file;
- nothing depends on the clock: `MessageTimeStamp` is midnight (Helsinki) of the invoice date, and
  `write_invoice` dates the invoice on the settlement's creation day, so a rewrite is identical;
- a settlement whose total is zero or negative would need a credit note (INV02): refused for now.
"""

from __future__ import annotations

import logging
import re
import textwrap
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from lxml import etree
from sqlalchemy.engine import Engine

from psop_hub.adapters.atomic import write_atomically
from psop_hub.hub.calendar import HELSINKI
from psop_hub.hub.database import unavailable_on_outage
from psop_hub.hub.errors import InvoiceNotPossible, NotFound
from psop_hub.hub.identifiers import is_valid_finnish_reference
from psop_hub.hub.money import cents
from psop_hub.hub.parties import Party, get_party, missing_details
from psop_hub.hub.settlement_views import settlement_view

__all__ = ["UNIT_CODES", "build_invoice", "invoice_path", "write_invoice"]

log = logging.getLogger(__name__)

XSI = "http://www.w3.org/2001/XMLSchema-instance"
DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
EUR = {"AmountCurrencyIdentifier": "EUR"}
DATE = {"Format": "CCYYMMDD"}
# Hub unit -> (Finnish unit text, UN/ECE Recommendation 20 code).
UNIT_CODES: dict[str, tuple[str, str]] = {
    "hour": ("h", "HUR"),
    "visit": ("krt", "C62"),
    "day": ("pv", "DAY"),
    "month": ("kk", "MON"),
    "piece": ("kpl", "H87"),
}
VAT_CODE = "E"
VAT_EXEMPTION_CODE = "VATEX-EU-132"
VAT_EXEMPTION_TEXT = "Arvonlisäveroton sosiaali- tai terveyspalvelu (AVL 34 § ja 37 §)"
ADJUSTMENT_SUFFIX = " (oikaisu)"
ADJUSTMENT_TEXT = "Oikaisu aiemmin tilitettyihin toteumiin"
# An adjustment row names its service month: a late delivery or a change to an earlier month.
ADJUSTMENT_MONTH_TEXT = "Oikaisu tai myöhässä ilmoitettu toteuma, palvelukuukausi {month}"
# A file name part: no separators, no leading dot.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@dataclass(frozen=True)
class _Line:
    """One settlement row, parsed from the view."""

    number: int
    kind: str
    code: str
    name: str
    unit: str
    unit_price: Decimal
    quantity: Decimal
    amount: Decimal
    service_month: date | None = None


def _decimal_comma(text: str) -> str:
    return text.replace(".", ",")


def _money(value: Decimal) -> str:
    """`1234.5` -> `1234,50`; never `-0,00`."""
    rounded = cents(value)
    return _decimal_comma(format(rounded if rounded else Decimal("0.00"), "f"))


def _quantity(value: Decimal) -> str:
    """A quantity as the view has it, with a decimal comma: `3.75` -> `3,75`."""
    return _decimal_comma(format(value if value else abs(value), "f"))


def _ccyymmdd(day: date) -> str:
    return f"{day:%Y%m%d}"


def _ovt(business_id: str) -> str:
    """The OVT e-invoice address of a business ID: `0037` and its eight digits."""
    return "0037" + business_id.replace("-", "")


def _sub(parent: Any, tag: str, text: str | None = None, attrs: dict[str, str] | None = None) -> Any:
    element = etree.SubElement(parent, tag, attrs or {})
    if text is not None:
        element.text = text
    return element


def _names(name: str) -> list[str]:
    """An organisation name in pieces of at most 70 characters (the schema's limit per element)."""
    return textwrap.wrap(name, 70) or [name]


def _line(row: dict[str, Any]) -> _Line:
    unit = row["unit"]
    if unit not in UNIT_CODES:
        raise InvoiceNotPossible(
            f"settlement row {row['row_number']} has unit {unit!r}, which has no Finvoice code"
        )
    return _Line(
        number=int(row["row_number"]),
        kind=row["kind"],
        code=row["service"]["code"] or "",
        name=row["service"]["name"] or "",
        unit=unit,
        unit_price=Decimal(row["unit_price"]),
        quantity=Decimal(row["quantity"]),
        amount=Decimal(row["amount"]),
        service_month=_month(row.get("service_month")),
    )


def _month(text: str | None) -> date | None:
    """`2026-11` -> the first of November 2026; None stays None."""
    return None if not text else date(int(text[:4]), int(text[5:7]), 1)


_LABELS = {"iban": "IBAN", "bic": "BIC"}


def _require(party: Party, role: str, *, account: bool) -> None:
    """InvoiceNotPossible naming the party and every detail an invoice needs that it lacks."""
    missing = missing_details(party, seller=account)
    if missing:
        labels = " and no ".join(_LABELS.get(field, field) for field in missing)
        flags = " ".join(f"--{field} ..." for field in missing)
        raise InvoiceNotPossible(
            f"{role} {party.business_id} has no {labels}: hub parties set {party.business_id} {flags}"
        )


def _check(view: dict[str, Any], seller: Party, buyer: Party, lines: list[_Line]) -> Decimal:
    """The invoice total after every check the invoice depends on; InvoiceNotPossible says what is wrong."""
    settlement_id = view["settlement_id"]
    if seller.business_id != view["provider"]:
        raise InvoiceNotPossible(
            f"seller {seller.business_id} is not provider {view['provider']} of {settlement_id}"
        )
    if buyer.business_id != view["organiser"]:
        raise InvoiceNotPossible(
            f"buyer {buyer.business_id} is not organiser {view['organiser']} of {settlement_id}"
        )
    _require(seller, "provider", account=True)
    _require(buyer, "organiser", account=False)
    total = sum((line.amount for line in lines), Decimal("0.00"))
    if total != Decimal(view["amount"]):
        raise InvoiceNotPossible(
            f"the rows of {settlement_id} sum to {total}, its amount is {view['amount']}"
        )
    if total <= 0:
        raise InvoiceNotPossible(
            f"settlement {settlement_id} totals {_money(total)} EUR: a zero or negative settlement "
            "needs a credit note (INV02), which is not supported yet"
        )
    if not is_valid_finnish_reference(view["reference"]):
        raise InvoiceNotPossible(f"settlement {settlement_id} has no valid Finnish reference number")
    return total


def build_invoice(
    view: dict[str, Any], seller: Party, buyer: Party, *, invoice_date: date, due_days: int = 14
) -> bytes:
    """The settlement's Finvoice 3.0 invoice as UTF-8 bytes: the same inputs give the same bytes."""
    if due_days < 0:
        raise ValueError(f"due_days must not be negative, not {due_days}")  # a caller's mistake
    lines = [_line(row) for row in view["rows"]]
    total = _check(view, seller, buyer, lines)
    reference = view["reference"].replace(" ", "")
    due = invoice_date + timedelta(days=due_days)
    root = etree.Element("Finvoice", {"Version": "3.0"}, nsmap={"xsi": XSI})
    root.set(f"{{{XSI}}}noNamespaceSchemaLocation", "Finvoice3.0.xsd")
    if buyer.bic:
        _transmission(root, view["settlement_id"], seller, buyer, invoice_date)
    _seller(root, seller)
    _buyer(root, buyer)
    _details(root, view, reference, total, invoice_date, due, due_days)
    for line in lines:
        _row(root, line)
    _epi(root, view["settlement_id"], seller, reference, total, invoice_date, due)
    return DECLARATION + etree.tostring(root, encoding="UTF-8", pretty_print=True)


def _transmission(root: Any, settlement_id: str, seller: Party, buyer: Party, day: date) -> None:
    frame = _sub(root, "MessageTransmissionDetails")
    sender = _sub(frame, "MessageSenderDetails")
    _sub(sender, "FromIdentifier", _ovt(seller.business_id), {"SchemeID": "0037"})
    _sub(sender, "FromIntermediator", seller.bic)
    receiver = _sub(frame, "MessageReceiverDetails")
    _sub(receiver, "ToIdentifier", _ovt(buyer.business_id), {"SchemeID": "0037"})
    _sub(receiver, "ToIntermediator", buyer.bic)
    message = _sub(frame, "MessageDetails")
    _sub(message, "MessageIdentifier", settlement_id)
    stamp = datetime.combine(day, time(0), HELSINKI).isoformat(timespec="seconds")
    _sub(message, "MessageTimeStamp", stamp)


def _address(parent: Any, prefix: str, party: Party) -> None:
    address = _sub(parent, f"{prefix}PostalAddressDetails")
    _sub(address, f"{prefix}StreetName", party.street)
    _sub(address, f"{prefix}TownName", party.town)
    _sub(address, f"{prefix}PostCodeIdentifier", party.postcode)
    _sub(address, "CountryCode", "FI")


def _seller(root: Any, seller: Party) -> None:
    details = _sub(root, "SellerPartyDetails")
    _sub(details, "SellerPartyIdentifier", seller.business_id)
    for piece in _names(seller.name):
        _sub(details, "SellerOrganisationName", piece)
    _address(details, "Seller", seller)
    information = _sub(root, "SellerInformationDetails")
    account = _sub(information, "SellerAccountDetails")
    _sub(account, "SellerAccountID", seller.iban, {"IdentificationSchemeName": "IBAN"})
    _sub(account, "SellerBic", seller.bic, {"IdentificationSchemeName": "BIC"})


def _buyer(root: Any, buyer: Party) -> None:
    details = _sub(root, "BuyerPartyDetails")
    _sub(details, "BuyerPartyIdentifier", buyer.business_id)
    for piece in _names(buyer.name):
        _sub(details, "BuyerOrganisationName", piece)
    _address(details, "Buyer", buyer)


def _details(
    root: Any,
    view: dict[str, Any],
    reference: str,
    total: Decimal,
    day: date,
    due: date,
    due_days: int,
) -> None:
    year, month = (int(part) for part in view["month"].split("-"))
    first = date(year, month, 1)
    last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    details = _sub(root, "InvoiceDetails")
    _sub(details, "InvoiceTypeCode", "INV01")
    _sub(details, "InvoiceTypeCodeUN", "380")
    _sub(details, "InvoiceTypeText", "LASKU")
    _sub(details, "OriginCode", "Original")
    _sub(details, "InvoiceNumber", reference)
    _sub(details, "InvoiceDate", _ccyymmdd(day), DATE)
    _sub(details, "InvoicingPeriodStartDate", _ccyymmdd(first), DATE)
    _sub(details, "InvoicingPeriodEndDate", _ccyymmdd(last), DATE)
    _sub(details, "SellerReferenceIdentifier", view["settlement_id"])
    _sub(details, "RowsTotalVatExcludedAmount", _money(total), EUR)
    _sub(details, "InvoiceTotalVatExcludedAmount", _money(total), EUR)
    _sub(details, "InvoiceTotalVatAmount", _money(Decimal(0)), EUR)
    _sub(details, "InvoiceTotalVatIncludedAmount", _money(total), EUR)
    vat = _sub(details, "VatSpecificationDetails")
    _sub(vat, "VatBaseAmount", _money(total), EUR)
    _sub(vat, "VatRatePercent", "0")
    _sub(vat, "VatCode", VAT_CODE)
    _sub(vat, "VatRateAmount", _money(Decimal(0)), EUR)
    _sub(vat, "VatFreeText", VAT_EXEMPTION_TEXT)
    _sub(vat, "VatExemptionReasonCode", VAT_EXEMPTION_CODE)
    _sub(details, "InvoiceFreeText", f"Palvelusetelien ja ostopalvelujen tilitys {view['settlement_id']}")
    terms = _sub(details, "PaymentTermsDetails")
    _sub(terms, "PaymentTermsFreeText", f"{due_days} pv netto")
    _sub(terms, "InvoiceDueDate", _ccyymmdd(due), DATE)


def _row(root: Any, line: _Line) -> None:
    unit_text, unit_un = UNIT_CODES[line.unit]
    quantity_attrs = {"QuantityUnitCode": unit_text, "QuantityUnitCodeUN": unit_un}
    row = _sub(root, "InvoiceRow")
    if line.code:
        _sub(row, "ArticleIdentifier", line.code[:70])
    suffix = ADJUSTMENT_SUFFIX if line.kind == "adjustment" else ""
    _sub(row, "ArticleName", line.name[: 100 - len(suffix)] + suffix)
    _sub(row, "DeliveredQuantity", _quantity(line.quantity), quantity_attrs)
    _sub(row, "InvoicedQuantity", _quantity(line.quantity), quantity_attrs)
    _sub(row, "UnitPriceAmount", _money(line.unit_price), {**EUR, "UnitPriceUnitCode": unit_text})
    _sub(row, "RowPositionIdentifier", str(line.number))
    if line.kind == "adjustment":
        month = line.service_month
        free = ADJUSTMENT_TEXT if month is None else ADJUSTMENT_MONTH_TEXT.format(month=f"{month:%m/%Y}")
        _sub(row, "RowFreeText", free)
    _sub(row, "RowVatRatePercent", "0")
    _sub(row, "RowVatCode", VAT_CODE)
    _sub(row, "RowVatAmount", _money(Decimal(0)), EUR)
    _sub(row, "RowVatExcludedAmount", _money(line.amount), EUR)
    _sub(row, "RowAmount", _money(line.amount), EUR)


def _epi(
    root: Any, settlement_id: str, seller: Party, reference: str, total: Decimal, day: date, due: date
) -> None:
    epi = _sub(root, "EpiDetails")
    identification = _sub(epi, "EpiIdentificationDetails")
    _sub(identification, "EpiDate", _ccyymmdd(day), DATE)
    _sub(identification, "EpiReference", settlement_id)
    party = _sub(epi, "EpiPartyDetails")
    bank = _sub(party, "EpiBfiPartyDetails")
    _sub(bank, "EpiBfiIdentifier", seller.bic, {"IdentificationSchemeName": "BIC"})
    beneficiary = _sub(party, "EpiBeneficiaryPartyDetails")
    _sub(beneficiary, "EpiNameAddressDetails", seller.name[:35].rstrip())
    _sub(beneficiary, "EpiBei", seller.business_id)
    _sub(beneficiary, "EpiAccountID", seller.iban, {"IdentificationSchemeName": "IBAN"})
    payment = _sub(epi, "EpiPaymentInstructionDetails")
    _sub(payment, "EpiRemittanceInfoIdentifier", reference, {"IdentificationSchemeName": "SPY"})
    _sub(payment, "EpiInstructedAmount", _money(total), EUR)
    _sub(payment, "EpiCharge", "SHA", {"ChargeOption": "SHA"})
    _sub(payment, "EpiDateOptionDate", _ccyymmdd(due), DATE)
    _sub(payment, "EpiPaymentMeansCode", "58")


def invoice_path(data_dir: Path, organiser: str, settlement_id: str) -> Path:
    """Where the invoice of a settlement goes: `outbox/<organiser>/invoices/<settlement_id>.xml`."""
    for value in (organiser, settlement_id):
        if not _SAFE_NAME.fullmatch(value):
            raise InvoiceNotPossible(f"{value!r} cannot be part of a file name")
    return Path(data_dir) / "outbox" / organiser / "invoices" / f"{settlement_id}.xml"


def write_invoice(
    engine: Engine, settlement_id: str, data_dir: Path, *, invoice_date: date | None = None
) -> Path:
    """Write a settlement's invoice atomically to the organiser's outbox; returns its path.

    NotFound for an unknown settlement, InvoiceNotPossible for missing party data or a total of zero or less.
    """
    with unavailable_on_outage(), engine.connect() as conn:
        view = settlement_view(conn, settlement_id)
        if view is None:
            raise NotFound(f"no settlement {settlement_id}")
        seller = get_party(conn, view["provider"])
        buyer = get_party(conn, view["organiser"])
    if seller is None:
        raise _no_party("provider", view["provider"], "--iban ... --bic ...")
    if buyer is None:
        raise _no_party("organiser", view["organiser"], "")
    day = invoice_date or datetime.fromisoformat(view["created_at"]).astimezone(HELSINKI).date()
    data = build_invoice(view, seller, buyer, invoice_date=day)
    path = invoice_path(data_dir, view["organiser"], settlement_id)
    write_atomically(path, data)
    log.info("invoice of %s written to %s (%d bytes)", settlement_id, path, len(data))
    return path


def _no_party(role: str, business_id: str, account: str) -> InvoiceNotPossible:
    flags = f"--name ... --street ... --postcode ... --town ... {account}".rstrip()
    return InvoiceNotPossible(
        f"{role} {business_id} has no invoicing details: hub parties set {business_id} {flags}"
    )
