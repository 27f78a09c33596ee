"""Settlement and payment end to end: REST in, `hub settle`, REST out, money to the cent."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lxml import etree

from tests.e2e.conftest import Hub, hub_cli, wait_for_status
from tests.messages import ORGANISER, OTHER_PROVIDER, PROVIDER, assigned, delivery, envelope, granted, uid

FINAL = {"applied", "rejected", "failed", "superseded"}


def payment(settlement_id: str, amount: str, reference: str) -> dict[str, Any]:
    """payment.confirmed from the organiser's ERP."""
    payload = {
        "settlement_id": settlement_id,
        "paid_date": "2026-10-20",
        "amount": amount,
        "reference": reference,
    }
    return envelope("payment.confirmed", payload)


def _voucher_of_the_year(county: Any, number: str) -> None:
    """Grant 40 of the service for 2026 and assign it to the provider at 30.00, both applied."""
    grant = granted(number, quantity="40", valid_from="2026-01-01", valid_to="2026-12-31")
    assign = assigned(number, price="30.00")
    assign["payload"]["start_date"] = "2026-01-01"
    for raw in (grant, assign):
        wait_for_status(county, county.post("/api/v1/messages", json=raw).json()["hub_id"], {"applied"})


def test_month_settled_and_paid_to_the_cent(hub: Hub) -> None:
    number = uid("SET")
    with hub.client("county") as county, hub.client("provider") as provider:
        _voucher_of_the_year(county, number)
        sent = [
            delivery(number, "2.5", service_date="2026-09-10"),  # 25.00 of 30.00 paid by the voucher
            delivery(number, "1.25", service_date="2026-09-20"),
            delivery(number, "1", service_date="2026-09-30", price="19.99"),  # cheaper than the voucher
            delivery(number, "3", service_date="2026-10-01"),  # next month: not in this settlement
        ]
        for raw in sent:
            body = wait_for_status(
                provider, provider.post("/api/v1/messages", json=raw).json()["hub_id"], FINAL
            )
            assert body["status"] == "applied", body

        out = hub_cli(hub.env, "settle", "--month", "2026-09")
        line = next(ln for ln in out.splitlines() if f"provider {PROVIDER}" in ln and ORGANISER in ln)
        settlement_id, reference = line.split()[0], line.split()[2]

        view = county.get(f"/api/v1/settlements/{settlement_id}")
        assert view.status_code == 200, view.text
        s = view.json()
        assert s["amount"] == "113.74"  # 62.50 + 31.25 + 19.99
        assert sum(int(r["amount"].replace(".", "")) for r in s["rows"]) == 11374
        assert (s["status"], s["month"], s["reference"]) == ("open", "2026-09", reference)
        assert hub_cli(hub.env, "settle", "--month", "2026-09").startswith("nothing to settle")

        short = wait_for_status(
            county,
            county.post("/api/v1/messages", json=payment(settlement_id, "113.73", reference)).json()[
                "hub_id"
            ],
            FINAL,
        )
        assert short["status"] == "rejected"
        assert "-0.01" in short["errors"][0]["message"]  # type: ignore[index]
        assert county.get(f"/api/v1/settlements/{settlement_id}").json()["status"] == "open"

        # The invoice waits for the parties' invoicing details, then the file adapter writes it.
        invoice = Path(hub.env["HUB_DATA_DIR"]) / "outbox" / ORGANISER / "invoices" / f"{settlement_id}.xml"
        time.sleep(3)
        assert not invoice.exists()
        hub_cli(
            hub.env,
            "parties",
            "set",
            PROVIDER,
            "--name",
            "Hoivapalvelu Onnela Oy",
            "--street",
            "Kauppakatu 12",
            "--postcode",
            "40100",
            "--town",
            "Jyväskylä",
            "--iban",
            "FI21 1234 5600 0007 85",
            "--bic",
            "NDEAFIHH",
        )
        hub_cli(
            hub.env,
            "parties",
            "set",
            ORGANISER,
            "--name",
            "Keski-Suomen hyvinvointialue",
            "--street",
            "Keskussairaalantie 19",
            "--postcode",
            "40620",
            "--town",
            "Jyväskylä",
        )
        deadline = time.monotonic() + 30
        while not invoice.exists():
            assert time.monotonic() < deadline, "no invoice written"
            time.sleep(0.3)
        doc = etree.parse(str(invoice))
        assert doc.getroot().get("Version") == "3.0"
        assert doc.findtext("InvoiceDetails/InvoiceTotalVatIncludedAmount") == "113,74"
        assert (
            doc.findtext("EpiDetails/EpiPaymentInstructionDetails/EpiRemittanceInfoIdentifier") == reference
        )
        rows = [r.findtext("RowAmount") for r in doc.findall("InvoiceRow")]
        assert sum(int(r.replace(",", "")) for r in rows if r) == 11374

        paid = wait_for_status(
            county,
            county.post("/api/v1/messages", json=payment(settlement_id, "113.74", reference)).json()[
                "hub_id"
            ],
            FINAL,
        )
        assert paid["status"] == "applied", paid
        after = county.get(f"/api/v1/settlements/{settlement_id}").json()
        assert (after["status"], after["paid_amount"], after["paid_date"]) == ("paid", "113.74", "2026-10-20")
        assert provider.get(f"/api/v1/settlements/{settlement_id}").status_code == 200
    with hub.client("other-county") as other:
        assert other.get(f"/api/v1/settlements/{settlement_id}").status_code == 404


def test_providers_read_their_own_settlements_and_no_one_elses(hub: Hub) -> None:
    number = uid("SETP")
    with hub.client("county") as county, hub.client("provider") as provider:
        _voucher_of_the_year(county, number)
        sent = delivery(number, "2", service_date="2026-07-15")
        body = wait_for_status(provider, provider.post("/api/v1/messages", json=sent).json()["hub_id"], FINAL)
        assert body["status"] == "applied", body
        out = hub_cli(hub.env, "settle", "--month", "2026-07")
        line = next(ln for ln in out.splitlines() if f"provider {PROVIDER}" in ln and ORGANISER in ln)
        settlement_id = line.split()[0]

        own = provider.get(f"/api/v1/settlements/{settlement_id}")
        assert own.status_code == 200, own.text
        assert own.json()["provider"] == PROVIDER
        july = [r for r in own.json()["rows"] if r["kind"] == "delivery"]
        assert [(r["service_month"], r["amount"]) for r in july] == [("2026-07", "50.00")]
        listed = provider.get("/api/v1/settlements", params={"month": "2026-07"})
        assert listed.status_code == 200, listed.text
        entries = listed.json()["settlements"]
        assert settlement_id in {s["settlement_id"] for s in entries}
        assert {s["provider"] for s in entries} == {PROVIDER}
        assert "rows" not in entries[0]
        # Asking for another provider's business ID lists nothing, even with the same organiser.
        assert provider.get("/api/v1/settlements", params={"provider": OTHER_PROVIDER}).json() == {
            "settlements": []
        }
        assert settlement_id in {
            s["settlement_id"] for s in county.get("/api/v1/settlements").json()["settlements"]
        }
        assert provider.get("/api/v1/settlements", params={"month": "2026-13"}).status_code == 400
    with hub.client("other-provider") as other:
        assert other.get(f"/api/v1/settlements/{settlement_id}").status_code == 404
        theirs = other.get("/api/v1/settlements", params={"month": "2026-07"}).json()["settlements"]
        assert settlement_id not in {s["settlement_id"] for s in theirs}
        assert {s["provider"] for s in theirs} <= {OTHER_PROVIDER}
        asked = other.get("/api/v1/settlements", params={"provider": PROVIDER, "organiser": ORGANISER})
        assert asked.json() == {"settlements": []}
    with hub.client("other-county") as other_county:
        listed_other = other_county.get("/api/v1/settlements", params={"organiser": ORGANISER}).json()
        assert listed_other == {"settlements": []}
    with hub.client("admin") as admin:
        everyone = admin.get("/api/v1/settlements", params={"month": "2026-07", "provider": PROVIDER})
        assert settlement_id in {s["settlement_id"] for s in everyone.json()["settlements"]}
