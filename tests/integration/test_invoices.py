"""Finvoice invoices of real settlements: parties in PostgreSQL, the file at the contract path,
totals to the cent, byte-identical rewrites, no temporary files left, clear errors."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal as D
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from lxml import etree
from sqlalchemy.engine import Engine

from psop_hub.adapters.finvoice import write_invoice
from psop_hub.consumers.settlement import settle_pair
from psop_hub.hub.errors import InvalidInput, InvoiceNotPossible, NotFound
from psop_hub.hub.identifiers import is_valid_finnish_reference
from psop_hub.hub.parties import Party, get_party, set_party
from tests.integration.settling import (
    PHYSIO,
    add_delivery,
    business_id,
    cancel,
    correct,
    rows_of,
    settlements_of,
)

IBAN = "FI21 1234 5600 0007 85"
MARCH, APRIL = date(2026, 3, 1), date(2026, 4, 1)


def euros(value: str) -> D:
    """A Finvoice amount (`1234,50`) as a Decimal."""
    return D(value.replace(",", "."))


def pair(engine: Engine, *, provider_bic: str | None = "NDEAFIHH") -> tuple[str, str]:
    """A fresh organiser and provider with their invoicing details stored."""
    organiser, provider = business_id(), business_id()
    set_party(engine, Party(organiser, "Itä-Uudenmaan hyvinvointialue", "Kirkkokatu 1", "06100", "Porvoo"))
    set_party(
        engine,
        Party(provider, "Hoivapalvelu Aurinko Oy", "Kauppakatu 5", "00100", "Helsinki", IBAN, provider_bic),
    )
    return organiser, provider


def settle(engine: Engine, organiser: str, provider: str, month: date) -> str:
    """Build the pair's settlement for `month`; its id."""
    summary = settle_pair(engine, organiser, provider, month)
    assert summary is not None
    return summary.settlement_id


def test_parties_are_stored_normalised_and_replaced(engine: Engine) -> None:
    bid = business_id()
    set_party(
        engine, Party(bid.replace("-", ""), "Hoiva Oy", "Katu 1", "00100", "Helsinki", IBAN, "ndeafihh")
    )
    with engine.connect() as conn:
        assert get_party(conn, bid) == Party(
            bid, "Hoiva Oy", "Katu 1", "00100", "Helsinki", "FI2112345600000785", "NDEAFIHH"
        )
    set_party(engine, Party(bid, "Hoiva ja Koti Oy", "Tie 2", "33100", "Tampere", None, None))
    with engine.connect() as conn:
        assert get_party(conn, bid) == Party(bid, "Hoiva ja Koti Oy", "Tie 2", "33100", "Tampere", None, None)
        assert get_party(conn, business_id()) is None
        assert get_party(conn, "not an id") is None
    with pytest.raises(InvalidInput, match=r"^iban "):
        set_party(engine, Party(bid, "Hoiva Oy", "", "", "", "FI21 1234 5600 0007 86", None))


def test_invoice_at_the_contract_path(engine: Engine, tmp_path: Path) -> None:
    organiser, provider = pair(engine)
    add_delivery(engine, organiser, provider, date(2026, 3, 2), "2.5", "25.00")
    add_delivery(engine, organiser, provider, date(2026, 3, 10), "0.33", "27.35")  # 9.0255 -> 9.03
    add_delivery(engine, organiser, provider, date(2026, 3, 3), "3", "48.90", PHYSIO, "visit")
    add_delivery(engine, organiser, provider, date(2026, 3, 5), "4", "25.00", status="cancelled")
    settlement_id = settle(engine, organiser, provider, MARCH)
    settlement = settlements_of(engine, organiser, provider)[0]

    path = write_invoice(engine, settlement_id, tmp_path)

    assert path == tmp_path / "outbox" / organiser / "invoices" / f"{settlement_id}.xml"
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # nothing temporary left
    root = etree.fromstring(path.read_bytes())
    rows = root.findall("InvoiceRow")
    assert len(rows) == len(rows_of(engine, settlement_id)) == 3
    row_sum = sum((euros(r.findtext("RowAmount")) for r in rows), D("0.00"))
    assert row_sum == settlement.amount == D("218.23")
    assert euros(root.findtext("InvoiceDetails/InvoiceTotalVatIncludedAmount")) == settlement.amount
    assert euros(root.findtext("InvoiceDetails/InvoiceTotalVatExcludedAmount")) == settlement.amount
    assert root.findtext("InvoiceDetails/InvoiceTotalVatAmount") == "0,00"
    payment = root.find("EpiDetails/EpiPaymentInstructionDetails")
    assert euros(payment.findtext("EpiInstructedAmount")) == settlement.amount
    assert payment.findtext("EpiRemittanceInfoIdentifier") == settlement.reference
    assert is_valid_finnish_reference(settlement.reference)
    assert root.findtext("InvoiceDetails/InvoiceNumber") == settlement.reference
    assert root.findtext("EpiDetails/EpiIdentificationDetails/EpiReference") == settlement_id
    assert root.findtext("SellerPartyDetails/SellerPartyIdentifier") == provider
    assert root.findtext("BuyerPartyDetails/BuyerPartyIdentifier") == organiser
    assert (
        root.findtext("SellerInformationDetails/SellerAccountDetails/SellerAccountID") == "FI2112345600000785"
    )
    # Dated on the settlement's creation day (Helsinki), due 14 days later.
    created = settlement.created_at.astimezone(ZoneInfo("Europe/Helsinki")).date()
    assert root.findtext("InvoiceDetails/InvoiceDate") == f"{created:%Y%m%d}"
    due = datetime.strptime(root.findtext("InvoiceDetails/PaymentTermsDetails/InvoiceDueDate"), "%Y%m%d")
    assert (due.date() - created).days == 14
    # The organiser has no BIC stored: no routing frame.
    assert root.find("MessageTransmissionDetails") is None


def test_rewriting_gives_the_same_bytes(engine: Engine, tmp_path: Path) -> None:
    organiser, provider = pair(engine)
    add_delivery(engine, organiser, provider, date(2026, 3, 2), "7.25", "31.40")
    settlement_id = settle(engine, organiser, provider, MARCH)
    first = write_invoice(engine, settlement_id, tmp_path).read_bytes()
    path = write_invoice(engine, settlement_id, tmp_path)
    assert path.read_bytes() == first
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    dated = write_invoice(engine, settlement_id, tmp_path, invoice_date=date(2026, 4, 3))
    assert dated == path
    assert etree.fromstring(dated.read_bytes()).findtext("InvoiceDetails/InvoiceDate") == "20260403"


def test_adjustment_rows_in_the_next_month(engine: Engine, tmp_path: Path) -> None:
    organiser, provider = pair(engine)
    event = add_delivery(engine, organiser, provider, date(2026, 3, 2), "4", "25.00")
    settle(engine, organiser, provider, MARCH)
    correct(engine, provider, event, "3")  # -25.00 in April's settlement
    add_delivery(engine, organiser, provider, date(2026, 4, 6), "2", "25.00")
    april = settle(engine, organiser, provider, APRIL)
    root = etree.fromstring(write_invoice(engine, april, tmp_path).read_bytes())
    names = [r.findtext("ArticleName") for r in root.findall("InvoiceRow")]
    assert names == ["Säännöllinen kotihoito", "Säännöllinen kotihoito (oikaisu)"]
    texts = [r.findtext("RowFreeText") for r in root.findall("InvoiceRow")]
    assert texts == [None, "Oikaisu tai myöhässä ilmoitettu toteuma, palvelukuukausi 03/2026"]
    amounts = [r.findtext("RowAmount") for r in root.findall("InvoiceRow")]
    assert amounts == ["50,00", "-25,00"]
    assert root.findtext("InvoiceDetails/InvoiceTotalVatIncludedAmount") == "25,00"


def test_credit_settlement_is_refused(engine: Engine, tmp_path: Path) -> None:
    organiser, provider = pair(engine)
    event = add_delivery(engine, organiser, provider, date(2026, 3, 2), "4", "25.00")
    settle(engine, organiser, provider, MARCH)
    cancel(engine, provider, event)
    april = settle(engine, organiser, provider, APRIL)  # -100.00
    with pytest.raises(InvoiceNotPossible, match="credit note"):
        write_invoice(engine, april, tmp_path)
    assert not (tmp_path / "outbox").exists()


def test_missing_party_data_is_named(engine: Engine, tmp_path: Path) -> None:
    organiser, provider = pair(engine, provider_bic=None)
    add_delivery(engine, organiser, provider, date(2026, 3, 2), "1", "25.00")
    settlement_id = settle(engine, organiser, provider, MARCH)
    with pytest.raises(
        InvoiceNotPossible, match=f"^provider {provider} has no BIC: hub parties set {provider} --bic"
    ):
        write_invoice(engine, settlement_id, tmp_path)
    set_party(engine, Party(provider, "Hoiva Oy", "Katu 1", "00100", "Helsinki", None, "NDEAFIHH"))
    with pytest.raises(
        InvoiceNotPossible, match=f"^provider {provider} has no IBAN: hub parties set {provider} --iban"
    ):
        write_invoice(engine, settlement_id, tmp_path)
    set_party(engine, Party(organiser, "Hyvinvointialue", "", "", "Porvoo"))
    set_party(engine, Party(provider, "Hoiva Oy", "Katu 1", "00100", "Helsinki", IBAN, "NDEAFIHH"))
    with pytest.raises(InvoiceNotPossible, match=f"^organiser {organiser} has no street and no postcode"):
        write_invoice(engine, settlement_id, tmp_path)
    assert not (tmp_path / "outbox").exists()


def test_party_without_details_is_named(engine: Engine, tmp_path: Path) -> None:
    organiser, provider = business_id(), business_id()
    add_delivery(engine, organiser, provider, date(2026, 3, 2), "1", "25.00")
    settlement_id = settle(engine, organiser, provider, MARCH)
    with pytest.raises(InvoiceNotPossible, match=f"^provider {provider} has no invoicing details: .*--iban"):
        write_invoice(engine, settlement_id, tmp_path)
    set_party(engine, Party(provider, "Hoiva Oy", "Katu 1", "00100", "Helsinki", IBAN, "NDEAFIHH"))
    with pytest.raises(InvoiceNotPossible, match=f"^organiser {organiser} has no invoicing details"):
        write_invoice(engine, settlement_id, tmp_path)


def test_organiser_bic_adds_the_routing_frame(engine: Engine, tmp_path: Path) -> None:
    organiser, provider = pair(engine)
    set_party(
        engine, Party(organiser, "Hyvinvointialue", "Kirkkokatu 1", "06100", "Porvoo", None, "OKOYFIHH")
    )
    add_delivery(engine, organiser, provider, date(2026, 3, 2), "1", "25.00")
    settlement_id = settle(engine, organiser, provider, MARCH)
    root = etree.fromstring(write_invoice(engine, settlement_id, tmp_path).read_bytes())
    frame = root.find("MessageTransmissionDetails")
    assert frame.findtext("MessageSenderDetails/FromIdentifier") == "0037" + provider.replace("-", "")
    assert frame.findtext("MessageReceiverDetails/ToIntermediator") == "OKOYFIHH"
    assert frame.findtext("MessageDetails/MessageIdentifier") == settlement_id


def test_unknown_settlement(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="PS-00000000-00000000-202603"):
        write_invoice(engine, "PS-00000000-00000000-202603", tmp_path)
