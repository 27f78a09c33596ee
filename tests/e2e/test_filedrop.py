"""The file drop against `hub run`: batch files in, receipts and archive out, state through REST."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Hub, wait_for_status
from tests.messages import HETU, ORGANISER, PROVIDER, assigned, new_business_id, order_record, uid
from tests.messages import granted as granted_message

FILE_NS = "urn:psop-hub:file:v1"
SOAP_NS = "urn:psop-hub:soap:v1"


def data_dir(hub: Hub) -> Path:
    """The hub's HUB_DATA_DIR."""
    return Path(hub.env["HUB_DATA_DIR"])


def drop(hub: Hub, client: str, name: str, content: bytes) -> Path:
    """Write NAME.part, then rename it to NAME, as a sender does; returns the receipt's path."""
    inbox = data_dir(hub) / "inbox" / client
    inbox.mkdir(parents=True, exist_ok=True)
    receipt = data_dir(hub) / "outbox" / client / "receipts" / f"{name}.receipt.json"
    receipt.unlink(missing_ok=True)
    (inbox / f"{name}.part").write_bytes(content)
    (inbox / f"{name}.part").rename(inbox / name)
    return receipt


def receipt_of(path: Path, timeout: float = 60) -> dict[str, Any]:
    """Wait for a receipt and read it."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"no receipt {path}"
        time.sleep(0.2)
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def decision(kind: str, number: str, **fields: str) -> str:
    """One VoucherDecision record."""
    inner = "".join(f"<v:{k}>{v}</v:{k}>" for k, v in fields.items())
    return (
        f"<v:VoucherDecision><v:DecisionType>{kind}</v:DecisionType><v:VoucherNumber>{number}</v:VoucherNumber>"
        f"<v:Organiser>{ORGANISER}</v:Organiser>{inner}</v:VoucherDecision>"
    )


def granted(number: str, quantity: str = "40") -> str:
    """A valid GRANTED record."""
    return decision(
        "GRANTED",
        number,
        DecisionDate="2026-11-01",
        Client=f"<v:Hetu>{HETU}</v:Hetu><v:HomeMunicipality>853</v:HomeMunicipality>",
        Service="<v:Code>KH01</v:Code><v:Name>Säännöllinen kotihoito</v:Name>",
        Unit="hour",
        UnitValue="25.00",
        Quantity=quantity,
        ValidFrom="2026-11-01",
        ValidTo="2027-10-31",
    )


def batch(*records: str) -> bytes:
    """A VoucherDecisionBatch file."""
    body = "\n  ".join(records)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<VoucherDecisionBatch xmlns="{FILE_NS}" xmlns:v="{SOAP_NS}">\n  {body}\n</VoucherDecisionBatch>\n'
    ).encode()


def voucher(hub: Hub, number: str, wanted: str, timeout: float = 60) -> dict[str, Any]:
    """Poll the voucher over REST until quantity_used is `wanted`."""
    deadline = time.monotonic() + timeout
    with hub.client("county") as county:
        while True:
            answer = county.get(f"/api/v1/vouchers/{ORGANISER}/{number}")
            if answer.status_code == 200 and answer.json()["quantity_used"] == wanted:
                return answer.json()  # type: ignore[no-any-return]
            assert time.monotonic() < deadline, answer.text
            time.sleep(0.3)


def test_xml_batch_and_provider_csv_with_invalid_records(hub: Hub) -> None:
    first, second = uid("FDX"), uid("FDX")
    assign = decision("ASSIGNED", first, Provider=PROVIDER, ProviderPrice="30.00", StartDate="2026-11-01")
    bad_hetu = granted(uid("FDX")).replace(HETU, "131052-308U")
    bad_type = granted(uid("FDX")).replace(
        "<v:UnitValue>25.00</v:UnitValue>", "<v:UnitValue>abc</v:UnitValue>"
    )
    receipt = receipt_of(
        drop(
            hub, "county", "paatokset.xml", batch(granted(first), bad_hetu, granted(second), assign, bad_type)
        )
    )
    assert (receipt["records"], receipt["accepted"], receipt["duplicates"]) == (5, 3, 0)
    rejected = {r["record"]: r for r in receipt["rejected"]}
    assert set(rejected) == {2, 5}
    assert rejected[2]["errors"] == [
        {"field": "VoucherDecision/Client/Hetu", "message": "has a wrong check character"}
    ]
    assert rejected[5]["errors"][0]["field"] == "VoucherDecision/UnitValue"
    assert "131052-308U" not in json.dumps(receipt)
    assert (data_dir(hub) / "archive" / "county").glob("*/paatokset.xml")

    # A spreadsheet's CSV from the provider: UTF-8 with a BOM, CRLF, decimal commas.
    rows = [
        "event_id;organiser;voucher_number;order_number;service_date;quantity;unit;price",
        f"{uid('ev')};{ORGANISER};{first};;03.11.2026;2,5;hour;",
        f"{uid('ev')};{ORGANISER};{first};;04.11.2026;1,25;hour;28,00",
        f"{uid('ev')};{ORGANISER};{first};;05.11.2026;0;hour;",
    ]
    csv = ("\ufeff" + "\r\n".join(rows) + "\r\n").encode("utf-8")
    receipt = receipt_of(drop(hub, "provider", "toteumat.csv", csv))
    assert (receipt["records"], receipt["accepted"]) == (3, 2)
    assert [r["record"] for r in receipt["rejected"]] == [3]
    assert receipt["rejected"][0]["errors"][0]["field"] == "quantity"
    state = voucher(hub, first, "3.75")
    shares = sorted(d["voucher_share"] for d in state["deliveries"])
    assert shares == ["31.25", "62.50"]

    # The same file again: every record a duplicate, nothing applied twice.
    again = receipt_of(drop(hub, "provider", "toteumat.csv", csv))
    assert (again["accepted"], again["duplicates"]) == (2, 2)
    time.sleep(2)
    assert voucher(hub, first, "3.75")["quantity_used"] == "3.75"


def test_latin9_payment_csv_from_an_erp(hub: Hub) -> None:
    rows = [
        "settlement_id;paid_date;amount;reference",
        "PS-20774740-15728600-202610;20.11.2026;1\u00a0234,50 €;1232",
        "PS-20774740-15728600-202609;31.02.2026;98,00;1232",
    ]
    receipt = receipt_of(
        drop(hub, "county", f"maksut-{uid('m')}.csv", "\r\n".join(rows).encode("iso-8859-15"))
    )
    assert (receipt["records"], receipt["accepted"]) == (2, 1)
    assert receipt["rejected"][0]["record"] == 2
    assert receipt["rejected"][0]["errors"][0]["field"] == "paid_date"


def test_unreadable_files_go_to_error_with_a_receipt(hub: Hub) -> None:
    cases = {
        "rikki.xml": b"<VoucherDecisionBatch xmlns='urn:psop-hub:file:v1'><v:VoucherDecision>",
        "tuntematon.csv": b"asiakas;summa\r\nMatti;12,00\r\n",
        "tyhja.csv": b"",
        "binaari.csv": bytes(range(256)) * 16,
        "vieras.xml": b"<?xml version='1.0'?><Invoice/>",
    }
    for name, content in cases.items():
        receipt = receipt_of(drop(hub, "county", name, content))
        assert receipt["error"], name
        assert receipt["accepted"] == 0
        assert (data_dir(hub) / "error" / "county" / name).exists(), name
    assert (
        "well-formed" in receipt_of(data_dir(hub) / "outbox/county/receipts/rikki.xml.receipt.json")["error"]
    )


def test_part_files_and_dotfiles_are_left_alone(hub: Hub) -> None:
    inbox = data_dir(hub) / "inbox" / "county"
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / "kesken.xml.part").write_bytes(batch(granted(uid("FDX"))))
    (inbox / ".piilossa.xml").write_bytes(batch(granted(uid("FDX"))))
    time.sleep(5)
    assert (inbox / "kesken.xml.part").exists()
    assert (inbox / ".piilossa.xml").exists()
    assert not (data_dir(hub) / "outbox/county/receipts/kesken.xml.part.receipt.json").exists()


SAMPLES = Path(__file__).resolve().parents[1] / "samples"


@pytest.mark.parametrize(
    ("sample", "client"),
    [("paatokset.xml", "county"), ("maksut_latin9.csv", "county"), ("toteumat_bom.csv", "provider")],
)
def test_sample_files_give_their_receipts(hub: Hub, sample: str, client: str) -> None:
    content = (SAMPLES / sample).read_bytes()
    receipt = receipt_of(drop(hub, client, sample, content))
    expected = json.loads(
        (SAMPLES / sample.replace(".xml", ".receipt.json").replace(".csv", ".receipt.json")).read_text()
    )
    sha = receipt.pop("sha256")
    assert sha == hashlib.sha256(content).hexdigest()
    # Every accepted record with its message_id (from the file's hash and its position) and hub_id,
    # the one REST and SOAP know it by.
    listed = receipt.pop("messages")
    assert len(listed) == expected["accepted"]
    assert {m["record"] for m in listed}.isdisjoint(r["record"] for r in expected["rejected"])
    with hub.client(client) as sender:
        for m in listed:
            assert m["message_id"] == f"file-{sha[:32]}-{m['record']}"
            found = sender.get(f"/api/v1/messages/{m['hub_id']}")
            assert found.status_code == 200, found.text
            assert found.json()["message_id"] == m["message_id"]
    assert sum(m["duplicate"] for m in listed) == expected["duplicates"]
    assert receipt == expected


def test_a_later_file_of_the_same_name_does_not_overwrite_the_earlier_receipt(hub: Hub) -> None:
    name = f"toteumat-{uid('f')}.csv"
    receipts = data_dir(hub) / "outbox" / "provider" / "receipts"
    header = "event_id;organiser;voucher_number;order_number;service_date;quantity;unit;price\n"
    first = receipt_of(
        drop(
            hub, "provider", name, (header + f"{uid('ev')};{ORGANISER};V-NONE;;01.11.2026;1;hour;\n").encode()
        )
    )
    content = header + "".join(f"{uid('ev')};{ORGANISER};V-NONE;;02.11.2026;1;hour;\n" for _ in range(2))
    inbox = data_dir(hub) / "inbox" / "provider"
    (inbox / f"{name}.part").write_bytes(content.encode())
    (inbox / f"{name}.part").rename(inbox / name)
    second = receipt_of(receipts / f"{name}.2.receipt.json")
    assert (first["records"], second["records"]) == (1, 2)
    assert json.loads((receipts / f"{name}.receipt.json").read_text()) == first
    assert {m["hub_id"] for m in first["messages"]}.isdisjoint(m["hub_id"] for m in second["messages"])


def test_records_of_the_wrong_kind_or_namespace_are_listed_not_skipped(hub: Hub) -> None:
    # a third namespace (neither the file's nor the SOAP contract's)
    wrong_ns = granted(uid("FDX")).replace(
        "<v:VoucherDecision>", '<VoucherDecision xmlns="urn:example:other">', 1
    )
    wrong_ns = wrong_ns[: wrong_ns.rindex("</v:VoucherDecision>")] + "</VoucherDecision>"
    order = "<v:ServiceOrder><v:OrderType>ENDED</v:OrderType></v:ServiceOrder>"
    receipt = receipt_of(
        drop(hub, "county", f"sekaisin-{uid('f')}.xml", batch(granted(uid("FDX")), wrong_ns, order))
    )
    assert (receipt["records"], receipt["accepted"]) == (3, 1)
    assert [r["record"] for r in receipt["rejected"]] == [2, 3]
    assert "unexpected element" in receipt["rejected"][0]["errors"][0]["message"]


def test_a_doctype_past_the_first_kilobytes_is_refused(hub: Hub) -> None:
    content = (
        b'<?xml version="1.0"?>\n<!--'
        + b"x" * 6000
        + b'-->\n<!DOCTYPE x [<!ENTITY e "e">]>\n'
        + batch(granted(uid("FDX"))).split(b"\n", 1)[1]
    )
    receipt = receipt_of(drop(hub, "county", f"dtd-{uid('f')}.xml", content))
    assert "DTD" in receipt["error"]


def approval_record(provider: str, *codes: str, **fields: str) -> str:
    """One ProviderApproval record, in the file's default namespace (the usual form)."""
    inner = "".join(f"<ServiceCode>{code}</ServiceCode>" for code in codes)
    rest = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
    return (
        f"<ProviderApproval xmlns='{SOAP_NS}'><Organiser>{ORGANISER}</Organiser>"
        f"<Provider>{provider}</Provider><Version>1</Version>{inner}<ValidFrom>2026-01-01</ValidFrom>{rest}</ProviderApproval>"
    )


def test_provider_approval_batch(hub: Hub) -> None:
    approved, every, refused = new_business_id(), new_business_id(), new_business_id()
    records = [
        approval_record(approved, "KH01", "SA01", ValidTo="2026-12-31"),
        approval_record(refused, "KH01", "KH01"),
        approval_record(every),
        approval_record(refused).replace("<Version>1</Version>", "<Version>0</Version>"),
    ]
    content = (
        '<?xml version="1.0" encoding="UTF-8"?>\r\n'
        f'<ProviderApprovalBatch xmlns="{FILE_NS}">\r\n  '
        + "\r\n  ".join(records)
        + "\r\n</ProviderApprovalBatch>\r\n"
    ).encode()
    receipt = receipt_of(drop(hub, "county", "hyvaksynnat.xml", content))
    assert (receipt["records"], receipt["accepted"]) == (4, 2), receipt
    rejected = {r["record"]: r["errors"] for r in receipt["rejected"]}
    assert set(rejected) == {2, 4}
    assert {"field": "ProviderApproval/ServiceCode", "message": "lists service code KH01 more than once"} in (
        rejected[2]
    )
    assert rejected[4][0]["field"] == "ProviderApproval/Version"
    expected = {
        approved: {
            "version": 1,
            "service_codes": ["KH01", "SA01"],
            "valid_from": "2026-01-01",
            "valid_to": "2026-12-31",
        },
        every: {"version": 1, "service_codes": None, "valid_from": "2026-01-01", "valid_to": None},
    }
    deadline = time.monotonic() + 60
    with hub.client("county") as county:
        for provider, fields in expected.items():
            while (answer := county.get(f"/api/v1/providers/{ORGANISER}/{provider}")).status_code != 200:
                assert answer.status_code == 404 and time.monotonic() < deadline, answer.text
                time.sleep(0.3)
            assert answer.json() == {"organiser": ORGANISER, "provider": provider, **fields}
        assert county.get(f"/api/v1/providers/{ORGANISER}/{refused}").status_code == 404
    # a provider's own folder may not carry approvals: every record refused by scope
    receipt = receipt_of(drop(hub, "provider", "itse.xml", content))
    assert receipt["accepted"] == 0 and len(receipt["rejected"]) == 4


def in_file_namespace(record: str) -> str:
    """A record written with the `v:` prefix, in the file's default namespace instead."""
    return record.replace("<v:", "<").replace("</v:", "</")


def usual_form(root: str, *records: str) -> bytes:
    """A batch as a partner who reads the contract writes it: one xmlns on the root, CRLF."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\r\n<{root} xmlns="{FILE_NS}">\r\n  '
        + "\r\n  ".join(records)
        + f"\r\n</{root}>\r\n"
    ).encode()


def until_found(hub: Hub, path: str, timeout: float = 60) -> dict[str, Any]:
    """GET a resource over REST until it exists."""
    deadline = time.monotonic() + timeout
    with hub.client("county") as county:
        while (answer := county.get(path)).status_code != 200:
            assert answer.status_code == 404 and time.monotonic() < deadline, answer.text
            time.sleep(0.3)
    return answer.json()  # type: ignore[no-any-return]


def test_default_namespace_batches_of_every_kind_are_read(hub: Hub) -> None:
    first, second = uid("FDN"), uid("FDN")
    bad_hetu = in_file_namespace(granted(uid("FDN")).replace(HETU, "131052-308U"))
    assign = in_file_namespace(
        decision("ASSIGNED", first, Provider=PROVIDER, ProviderPrice="30.00", StartDate="2026-11-01")
    )
    content = usual_form(
        "VoucherDecisionBatch",
        in_file_namespace(granted(first)),
        bad_hetu,
        in_file_namespace(granted(second)),
        assign,
    )
    receipt = receipt_of(drop(hub, "county", f"oletus-{uid('f')}.xml", content))
    assert (receipt["records"], receipt["accepted"], receipt["duplicates"]) == (4, 3, 0), receipt
    assert receipt["rejected"] == [
        {
            "record": 2,
            "line": 4,
            "errors": [{"field": "VoucherDecision/Client/Hetu", "message": "has a wrong check character"}],
        }
    ]
    assert "131052-308U" not in json.dumps(receipt)
    state = until_found(hub, f"/api/v1/vouchers/{ORGANISER}/{first}")
    deadline = time.monotonic() + 60
    while state["status"] != "assigned":
        assert time.monotonic() < deadline, state
        time.sleep(0.3)
        state = until_found(hub, f"/api/v1/vouchers/{ORGANISER}/{first}")
    assert (state["provider"], state["quantity"], state["unit_value"]) == (PROVIDER, "40.00", "25.00")
    assert until_found(hub, f"/api/v1/vouchers/{ORGANISER}/{second}")["status"] == "granted"

    number = uid("FDN")
    missing = order_record(uid("FDN")).replace(f"<Organiser>{ORGANISER}</Organiser>", "")
    receipt = receipt_of(
        drop(
            hub,
            "county",
            f"tilaukset-{uid('f')}.xml",
            usual_form("ServiceOrderBatch", order_record(number), missing),
        )
    )
    assert (receipt["records"], receipt["accepted"]) == (2, 1), receipt
    assert receipt["rejected"][0]["record"] == 2
    assert receipt["rejected"][0]["errors"][0]["field"] == "ServiceOrder/Organiser"
    found = until_found(hub, f"/api/v1/orders/{ORGANISER}/{number}")
    assert (found["status"], found["provider"], found["unit"], found["unit_price"]) == (
        "placed",
        PROVIDER,
        "visit",
        "42.00",
    )

    approved = new_business_id()
    record = in_file_namespace(
        approval_record(approved, "KH01", ValidTo="2026-12-31").replace(f" xmlns='{SOAP_NS}'", "")
    )
    receipt = receipt_of(
        drop(hub, "county", f"hyvaksynnat-{uid('f')}.xml", usual_form("ProviderApprovalBatch", record))
    )
    assert (receipt["records"], receipt["accepted"], receipt["rejected"]) == (1, 1, []), receipt
    assert until_found(hub, f"/api/v1/providers/{ORGANISER}/{approved}") == {
        "organiser": ORGANISER,
        "provider": approved,
        "version": 1,
        "service_codes": ["KH01"],
        "valid_from": "2026-01-01",
        "valid_to": "2026-12-31",
    }


def test_a_mixed_batch_takes_both_namespaces_and_lists_a_third(hub: Hub) -> None:
    numbers = [uid("FDM") for _ in range(3)]
    third = granted(uid("FDM")).replace(
        "<v:VoucherDecision>", '<o:VoucherDecision xmlns:o="urn:example:o">', 1
    )
    third = third[: third.rindex("</v:VoucherDecision>")] + "</o:VoucherDecision>"
    content = batch(
        in_file_namespace(granted(numbers[0])),
        granted(numbers[1]),
        third,
        in_file_namespace(granted(numbers[2], quantity="12")),
        in_file_namespace(granted(uid("FDM"))).replace(
            "<UnitValue>25.00</UnitValue>", "<UnitValue>abc</UnitValue>"
        ),
    )
    name = f"sekoitus-{uid('f')}.xml"
    receipt = receipt_of(drop(hub, "county", name, content))
    assert (receipt["records"], receipt["accepted"]) == (5, 3), receipt
    rejected = {r["record"]: r["errors"] for r in receipt["rejected"]}
    assert set(rejected) == {3, 5}
    assert "unexpected element {urn:example:o}VoucherDecision" in rejected[3][0]["message"]
    assert rejected[5][0]["field"] == "VoucherDecision/UnitValue"
    for number, quantity in zip(numbers, ("40.00", "40.00", "12.00"), strict=True):
        state = until_found(hub, f"/api/v1/vouchers/{ORGANISER}/{number}")
        assert (state["status"], state["quantity"]) == ("granted", quantity)
    # dropped again: every record a duplicate, nothing applied twice
    again = receipt_of(drop(hub, "county", name, content))
    assert (again["accepted"], again["duplicates"]) == (3, 3)


def test_clients_add_makes_the_inbox_and_receipts_folders(hub: Hub) -> None:
    name = f"erp-{uid('c')}"
    hub.add_client(name, "--role", "system", "--organiser", ORGANISER)
    assert (data_dir(hub) / "inbox" / name).is_dir()
    assert (data_dir(hub) / "outbox" / name / "receipts").is_dir()
    admin = f"admin-{uid('c')}"
    hub.add_client(admin, "--role", "admin")
    assert not (data_dir(hub) / "inbox" / admin).exists()  # admins send no files


def result_of(path: Path, timeout: float = 90) -> dict[str, Any]:
    """Wait for a result (`NAME.result.json`) and read it."""
    return receipt_of(path, timeout)


def results_logged(hub: Hub, name: str) -> int:
    """How often the hub logged writing the result `name`."""
    return hub.log.read_text(encoding="utf-8", errors="replace").count(f"result {name} of ")


def test_the_result_follows_once_every_record_is_final(hub: Hub) -> None:
    number, never = uid("FDR"), uid("NEVER")
    with hub.client("county") as county:
        for raw in (granted_message(number, quantity="5"), assigned(number)):
            wait_for_status(county, county.post("/api/v1/messages", json=raw).json()["hub_id"], {"applied"})
    rows = [
        "event_id;organiser;voucher_number;order_number;service_date;quantity;unit;price",
        f"{uid('ev')};{ORGANISER};{number};;03.11.2026;3;hour;",  # applied
        f"{uid('ev')};{ORGANISER};{number};;04.11.2026;3;hour;",  # over the voucher: a rule refuses it
        f"{uid('ev')};{ORGANISER};{number};;05.11.2026;0;hour;",  # refused at intake
        f"{uid('ev')};{ORGANISER};{never};;06.11.2026;1;hour;",  # its voucher never comes: failed
    ]
    content = ("\r\n".join(rows) + "\r\n").encode()
    name = f"toteumat-{uid('f')}.csv"
    receipts = data_dir(hub) / "outbox" / "provider" / "receipts"
    receipt = receipt_of(drop(hub, "provider", name, content))
    assert (receipt["records"], receipt["accepted"]) == (4, 3)
    assert not (receipts / f"{name}.result.json").exists()  # the last record still waits

    result = result_of(receipts / f"{name}.result.json")
    hub_ids = {m["record"]: m["hub_id"] for m in receipt["messages"]}
    with hub.client("provider") as provider:
        assert provider.get(f"/api/v1/messages/{hub_ids[4]}").json()["status"] == "failed"
    assert {k: result[k] for k in ("file", "sha256", "receipt", "records", "duplicates")} == {
        "file": name,
        "sha256": receipt["sha256"],
        "receipt": f"{name}.receipt.json",
        "records": 4,
        "duplicates": 0,
    }
    assert [result[k] for k in ("applied", "rejected", "superseded", "failed", "replaced")] == [1, 2, 0, 1, 0]
    by_record = {r["record"]: r for r in result["results"]}
    assert [r["record"] for r in result["results"]] == [1, 2, 3, 4]
    assert by_record[1] == {
        "record": 1,
        "line": 2,
        "message_id": f"file-{receipt['sha256'][:32]}-1",
        "hub_id": hub_ids[1],
        "duplicate": False,
        "status": "applied",
    }
    assert by_record[2]["status"] == "rejected" and by_record[2]["rule"] == "within_quantity"
    assert by_record[2]["errors"] == [
        {
            "field": "quantity",
            "message": f"this would take voucher {number} to 6.00 hour, over its 5.00; 2.00 remain",
        }
    ]
    assert by_record[3] == {
        "record": 3,
        "line": 4,
        "status": "rejected",
        "stage": "intake",
        "errors": receipt["rejected"][0]["errors"],
    }
    assert (
        by_record[4]["status"] == "failed" and "has not arrived yet" in by_record[4]["errors"][0]["message"]
    )

    # The same content again under the same name, the first receipt kept: NAME.2, all duplicates.
    inbox = data_dir(hub) / "inbox" / "provider"
    (inbox / f"{name}.part").write_bytes(content)
    (inbox / f"{name}.part").rename(inbox / name)
    second = result_of(receipts / f"{name}.2.result.json")
    assert second["receipt"] == f"{name}.2.receipt.json"
    assert (second["duplicates"], second["applied"], second["rejected"], second["failed"]) == (3, 1, 2, 1)
    taken = [r for r in second["results"] if "hub_id" in r]
    assert [r["hub_id"] for r in taken] == [hub_ids[1], hub_ids[2], hub_ids[4]]  # the first copies
    assert all(r["duplicate"] is True and "a duplicate" in r["detail"] for r in taken)
    assert [r["status"] for r in second["results"]] == [r["status"] for r in result["results"]]
    time.sleep(3)  # a few more rounds of the adapter: nothing is written again
    assert json.loads((receipts / f"{name}.result.json").read_text(encoding="utf-8")) == result
    assert results_logged(hub, f"{name}.result.json") == 1
    assert results_logged(hub, f"{name}.2.result.json") == 1


def test_the_result_of_an_xml_batch_names_soap_paths(hub: Hub) -> None:
    number = uid("FDR")
    content = batch(
        granted(number), granted(number, quantity="12"), granted(uid("FDR")).replace(HETU, "131052-308U")
    )
    name = f"paatokset-{uid('f')}.xml"
    receipt = receipt_of(drop(hub, "county", name, content))
    assert (receipt["records"], receipt["accepted"]) == (3, 2)
    result = result_of(data_dir(hub) / "outbox" / "county" / "receipts" / f"{name}.result.json")
    assert [r["status"] for r in result["results"]] == ["applied", "rejected", "rejected"]
    twice = result["results"][1]
    assert twice["rule"] == "voucher_granted_once" and "stage" not in twice
    assert twice["errors"][0]["field"] == "VoucherDecision/VoucherNumber"
    assert result["results"][2]["stage"] == "intake"
    assert result["results"][2]["errors"][0]["field"] == "VoucherDecision/Client/Hetu"
    assert "131052-308U" not in json.dumps(result)
