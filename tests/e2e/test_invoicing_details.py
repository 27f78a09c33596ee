"""Invoicing details through the REST API, end to end: a settlement's invoice waits (and the
admin sees it waiting) until the provider and the organiser PUT their details; then the file
adapter of `hub run` writes it, as after `hub parties set`."""

from __future__ import annotations

import time
from pathlib import Path

from lxml import etree

from tests.e2e.conftest import Hub, hub_cli, wait_for_status
from tests.messages import OTHER_ORGANISER, OTHER_PROVIDER, assigned, delivery, granted, uid


def test_invoice_written_once_both_parties_put_their_details(hub: Hub) -> None:
    number = uid("INV")
    grant = granted(number, quantity="20", valid_from="2026-01-01", valid_to="2026-12-31")
    grant["payload"]["organiser"] = OTHER_ORGANISER
    assign = assigned(number, provider=OTHER_PROVIDER, price="30.00")
    assign["payload"].update(organiser=OTHER_ORGANISER, start_date="2026-01-01")
    report = delivery(
        number, "2", provider=OTHER_PROVIDER, organiser=OTHER_ORGANISER, service_date="2026-06-10"
    )
    with (
        hub.client("other-county") as county,
        hub.client("other-provider") as provider,
        hub.client("admin") as admin,
    ):
        for client, raw in ((county, grant), (county, assign), (provider, report)):
            hub_id = client.post("/api/v1/messages", json=raw).json()["hub_id"]
            assert wait_for_status(client, hub_id, {"applied", "rejected", "failed"})["status"] == "applied"
        out = hub_cli(hub.env, "settle", "--month", "2026-06")
        line = next(
            ln for ln in out.splitlines() if f"provider {OTHER_PROVIDER}" in ln and OTHER_ORGANISER in ln
        )
        settlement_id = line.split()[0]
        invoice = (
            Path(hub.env["HUB_DATA_DIR"]) / "outbox" / OTHER_ORGANISER / "invoices" / f"{settlement_id}.xml"
        )

        def waiting() -> dict[str, object] | None:
            listed = admin.get("/api/v1/admin/settlements/waiting", params={"limit": 10_000})
            assert listed.status_code == 200, listed.text
            return next(
                (s for s in listed.json()["settlements"] if s["settlement_id"] == settlement_id), None
            )

        entry = waiting()
        assert entry is not None and entry["waiting_for"] == ["provider", "organiser"]
        assert provider.get("/api/v1/admin/settlements/waiting").status_code == 403

        seller = {
            "name": "Kotiapu Kuusela Oy",
            "street": "Hämeenkatu 5",
            "postcode": "33100",
            "town": "Tampere",
            "iban": "FI21 1234 5600 0007 85",
            "bic": "OKOYFIHH",
        }
        bad = provider.put(
            f"/api/v1/parties/{OTHER_PROVIDER}", json={**seller, "iban": "FI00 1234", "bic": "X"}
        )
        assert bad.status_code == 422
        assert {e["field"] for e in bad.json()["errors"]} == {"iban", "bic"}
        assert provider.put(f"/api/v1/parties/{OTHER_ORGANISER}", json=seller).status_code == 403
        assert provider.put(f"/api/v1/parties/{OTHER_PROVIDER}", json=seller).status_code == 200
        entry = waiting()
        assert entry is not None and entry["waiting_for"] == ["organiser"]
        time.sleep(2.5)  # more than a file-adapter round (HUB_FILES_POLL_S): still nothing written
        assert not invoice.exists()

        buyer = {
            "name": "Pirkanmaan hyvinvointialue",
            "street": "Kalevantie 4",
            "postcode": "33100",
            "town": "Tampere",
        }
        assert county.put(f"/api/v1/parties/{OTHER_ORGANISER}", json=buyer).status_code == 200
        assert waiting() is None
        deadline = time.monotonic() + 30
        while not invoice.exists():
            assert time.monotonic() < deadline, "no invoice written after the details were PUT"
            time.sleep(0.3)
        doc = etree.parse(str(invoice))
        assert doc.findtext("SellerPartyDetails/SellerOrganisationName") == "Kotiapu Kuusela Oy"
        assert doc.findtext("BuyerPartyDetails/BuyerOrganisationName") == "Pirkanmaan hyvinvointialue"
        assert doc.findtext("InvoiceDetails/InvoiceTotalVatIncludedAmount") == "50,00"
