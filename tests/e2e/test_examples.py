"""Every file in examples/ is sent, as examples/README.md says, to a fresh `hub run`, and applied.

The examples tell one story that works in the order of their numbers on a fresh hub; this test
gives them a hub of their own (its own database and vhost), registers the clients the README
registers, and sends each file unchanged through its own door: REST, SOAP (the README's `SECRET`
and `HUB_ID` placeholders filled in) or the file drop. Before the payments it settles the months
with the real CLI and checks that the settlement ids, amounts and reference numbers written in the
payment examples are those the hub gives. At the end every message the examples made is applied.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree

from psop_hub.mappings.csvfiles import read_records
from tests.conftest import fresh_database, fresh_vhost, hub_environment
from tests.e2e.conftest import ROOT, Hub, hub_cli, start_hub, wait_for_status

pytestmark = pytest.mark.e2e

EXAMPLES = ROOT / "examples"
TNS = "urn:psop-hub:soap:v1"
FINAL = {"applied", "rejected", "superseded", "failed", "replaced"}
# The README's sender column, to the client names its commands register.
CLIENTS = {"county": "county-apotti", "provider": "kotihoito-oy", "ERP": "county-erp"}
ORGANISER, PROVIDER = "2077474-0", "1572860-0"


def steps() -> list[tuple[Path, str]]:
    """(example file, client name) from the README's table, in its order."""
    rows = re.findall(r"^\| (\d\d) \| `([^`]+)` \| (\w+)", (EXAMPLES / "README.md").read_text(), re.M)
    return [(EXAMPLES / path, CLIENTS[who]) for _, path, who in rows]


def test_the_readme_lists_every_example_file_once_in_the_order_of_its_number() -> None:
    listed = [path for path, _ in steps()]
    on_disk = sorted(p for p in EXAMPLES.rglob("*") if p.is_file() and p.name != "README.md")
    assert sorted(listed) == on_disk
    numbers = [int(p.name[:2]) for p in listed]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)


def test_there_is_an_example_of_every_message_type_and_soap_operation() -> None:
    from psop_hub.mappings.payloads import MESSAGE_TYPES

    types = {json.loads(p.read_text())["type"] for p in EXAMPLES.glob("rest/*.json")}
    assert types == set(MESSAGE_TYPES)
    wsdl = etree.parse(str(ROOT / "psop_hub" / "mappings" / "wsdl" / "psop-hub-v1.wsdl"))
    operations = set(wsdl.xpath("//*[local-name()='portType']/*[local-name()='operation']/@name"))
    assert {p.stem[3:] for p in EXAMPLES.glob("soap/*.xml")} == operations


@pytest.fixture(scope="module")
def fresh_hub(run_id: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with fresh_database(f"psop_examples_{run_id}") as db, fresh_vhost(f"psop_examples_{run_id}") as amqp:
        data = tmp_path_factory.mktemp("examples-data")
        running = start_hub(hub_environment(db, amqp, str(data)), tmp_path_factory.mktemp("ex") / "hub.log")
        try:
            running.add_client("county-apotti", "--role", "system", "--organiser", ORGANISER)
            running.add_client("county-erp", "--role", "system", "--organiser", ORGANISER)
            running.add_client("kotihoito-oy", "--role", "provider", "--provider", PROVIDER)
            running.add_client("admin", "--role", "admin")
            yield running
        finally:
            assert running.stop() == 0, running.log.read_text()[-3000:]


def send_rest(hub: Hub, path: Path, who: str) -> str:
    with hub.client(who) as client:
        answer = client.post(
            "/api/v1/messages", content=path.read_bytes(), headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 202, (path.name, answer.text)
        hub_id: str = answer.json()["hub_id"]
        body = wait_for_status(client, hub_id, FINAL, timeout=60)
        assert body["status"] == "applied", (path.name, body)
    return hub_id


def send_soap(hub: Hub, path: Path, who: str, placeholders: dict[str, str]) -> etree._Element:
    text = path.read_text(encoding="utf-8").replace("SECRET", hub.secrets[who])
    for name, value in placeholders.items():
        text = text.replace(name, value)
    operation = path.stem[3:]
    answer = httpx.post(
        f"{hub.url}/soap/v1",
        content=text.encode(),
        headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{TNS}#{operation}"'},
        timeout=30,
    )
    assert answer.status_code == 200, (path.name, answer.text)
    return etree.fromstring(answer.content)


def found(root: etree._Element, name: str) -> str:
    values = root.xpath(f"//*[local-name()='{name}']/text()")
    assert len(values) == 1, etree.tostring(root)
    return str(values[0])


def drop(hub: Hub, path: Path, who: str) -> dict[str, Any]:
    data = Path(hub.env["HUB_DATA_DIR"])
    inbox = data / "inbox" / who
    inbox.mkdir(parents=True, exist_ok=True)
    part = inbox / f"{path.name}.part"
    part.write_bytes(path.read_bytes())
    part.rename(inbox / path.name)
    receipt = data / "outbox" / who / "receipts" / f"{path.name}.receipt.json"
    deadline = time.monotonic() + 60
    while not receipt.exists():
        assert time.monotonic() < deadline, f"no receipt for {path.name}"
        time.sleep(0.2)
    body: dict[str, Any] = json.loads(receipt.read_text())
    assert body["rejected"] == [] and body["records"] == body["accepted"] > 0, body
    assert body["duplicates"] == 0, body
    return body


def messages_of(hub: Hub, sender: str) -> list[dict[str, Any]]:
    with hub.client("admin") as admin:
        page = admin.get("/api/v1/admin/messages", params={"sender": sender, "limit": 200}).json()
    return list(page["messages"])


def wait_all_final(hub: Hub, sender: str, count: int, timeout: float = 90) -> list[dict[str, Any]]:
    """The sender's messages once there are `count` of them and every one is final."""
    deadline = time.monotonic() + timeout
    while True:
        found_now = messages_of(hub, sender)
        if len(found_now) >= count and all(m["status"] in FINAL for m in found_now):
            return found_now
        assert time.monotonic() < deadline, found_now
        time.sleep(0.3)


def settle(hub: Hub, month: str) -> dict[str, dict[str, Any]]:
    """Settle a month with the CLI; the settlements it made, by id, as REST shows them."""
    out = hub_cli(hub.env, "settle", "--month", month)
    ids = re.findall(r"^(PS-\d+-\d+-\d{6})\b", out, re.M)
    assert ids, out
    with hub.client("county-apotti") as county:
        return {i: county.get(f"/api/v1/settlements/{i}").json() for i in ids}


def payments_written_in(path: Path) -> list[tuple[str, str, str]]:
    """(settlement_id, amount, reference) of a payment example, read as the hub reads it."""
    if path.suffix == ".json":
        p = json.loads(path.read_text())["payload"]
        return [(p["settlement_id"], p["amount"], p["reference"])]
    with path.open("rb") as stream:
        _, records = read_records(stream, provider=None)
        messages = [r.message for r in records]
    assert all(m is not None for m in messages), path
    return [
        (m["payload"]["settlement_id"], m["payload"]["amount"], m["payload"]["reference"])
        for m in messages
        if m is not None
    ]


def test_every_example_is_applied_in_order_on_a_fresh_hub(fresh_hub: Hub) -> None:
    hub = fresh_hub
    hub_ids: dict[str, str] = {}
    made_by: dict[str, int] = dict.fromkeys(CLIENTS.values(), 0)  # messages each client made so far
    settlements: dict[str, dict[str, Any]] = {}
    for path, who in steps():
        number = path.name[:2]
        if number >= "17" and not settlements:
            # The README's `hub settle` step: after 16, before the payments.
            settlements = settle(hub, "2026-09") | settle(hub, "2026-10")
        if number >= "17":
            for settlement_id, amount, reference in payments_written_in(path):
                s = settlements[settlement_id]
                assert (s["amount"], s["reference"], s["status"]) == (amount, reference, "open"), s
        if path.suffix == ".json":
            hub_ids[number] = send_rest(hub, path, who)
            made_by[who] += 1
        elif path.parent.name == "soap":
            answer = send_soap(hub, path, who, {"HUB_ID": hub_ids.get("12", "")})
            if path.stem.endswith("GetMessageStatus"):
                assert found(answer, "HubId") == hub_ids["12"]
                assert found(answer, "Status") == "APPLIED"
                continue
            assert found(answer, "Status") == "ACCEPTED", etree.tostring(answer)
            hub_ids[number] = found(answer, "HubId")
            made_by[who] += 1
            with hub.client(who) as client:
                body = wait_for_status(client, hub_ids[number], FINAL, timeout=60)
            assert body["status"] == "applied", (path.name, body)
        else:
            made_by[who] += drop(hub, path, who)["records"]
            made = wait_all_final(hub, who, made_by[who])
            assert len(made) == made_by[who]
            assert {m["status"] for m in made} == {"applied"}, [m for m in made if m["status"] != "applied"]

    # Every message the examples made is applied: REST and SOAP submissions, and each file record.
    every = [m for who in made_by for m in messages_of(hub, who)]
    assert len(every) == sum(made_by.values())
    assert {m["status"] for m in every} == {"applied"}, [m for m in every if m["status"] != "applied"]
    with hub.client("county-apotti") as county:
        for settlement_id in settlements:
            assert county.get(f"/api/v1/settlements/{settlement_id}").json()["status"] == "paid"
        voucher = county.get(f"/api/v1/vouchers/{ORGANISER}/EX-PS-0001").json()
        assert voucher["status"] == "revoked" and voucher["version"] == 3, voucher
