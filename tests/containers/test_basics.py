"""The stack from nothing, as a partner and an operator use it: REST, SOAP and the file drop, all
through lb; state read back over REST."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import httpx
import pytest
import zeep
from zeep.transports import Transport
from zeep.wsse.username import UsernameToken

from tests.containers.conftest import PORT, URL, Stack
from tests.e2e.test_soap import granted as soap_granted
from tests.messages import ORGANISER, PROVIDER, assigned, delivery, granted, uid

pytestmark = pytest.mark.containers

FINAL = {"applied", "rejected", "failed", "superseded"}


@pytest.fixture(scope="module")
def senders(stack: Stack) -> Stack:
    """The organiser's system and the provider, added with `docker compose exec -T api hub clients add`."""
    return stack.senders()


def wait_status(client: httpx.Client, hub_id: str, wanted: set[str], timeout: float = 60) -> dict[str, Any]:
    """Poll a message (through lb) until its status is one of `wanted`."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        answer = client.get(f"/api/v1/messages/{hub_id}")
        if answer.status_code == 200:
            body = answer.json()
            if body["status"] in wanted:
                return body
        time.sleep(0.2)
    raise AssertionError(f"message {hub_id} still {body.get('status')}: {body}")


def voucher_when(client: httpx.Client, number: str, used: str, timeout: float = 60) -> dict[str, Any]:
    """Poll the voucher until quantity_used is `used`."""
    deadline = time.monotonic() + timeout
    while True:
        answer = client.get(f"/api/v1/vouchers/{ORGANISER}/{number}")
        if answer.status_code == 200 and answer.json()["quantity_used"] == used:
            return answer.json()  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.3)


def grant_and_assign(stack: Stack, number: str, quantity: str = "100") -> None:
    """voucher.granted and voucher.assigned, both sent by the organiser's system, applied."""
    with stack.client("county") as county:
        for raw in (granted(number, quantity=quantity), assigned(number, price="30.00")):
            answer = county.post("/api/v1/messages", json=raw)
            assert answer.status_code == 202, answer.text
            wait_status(county, answer.json()["hub_id"], {"applied"})


def test_ready_through_lb_and_only_lb_published(stack: Stack) -> None:
    answer = httpx.get(f"{URL}/health/ready", timeout=5)
    assert answer.status_code == 200
    assert answer.json()["checks"] == {"database": "up", "broker": "up"}
    for service in ("api", "worker", "files", "scheduler", "rabbitmq", "postgres"):
        for container in stack.containers(service):
            ports = subprocess.run(["docker", "port", container], capture_output=True, text=True).stdout
            assert ports.strip() == "", f"{service} publishes {ports}"
    (lb,) = stack.containers("lb")
    ports = subprocess.run(["docker", "port", lb], capture_output=True, text=True).stdout.split()
    assert ports == ["8000/tcp", "->", f"127.0.0.1:{PORT}"]
    assert len(stack.containers("api")) == 2
    assert len(stack.containers("worker")) == 2
    assert len(stack.containers("files")) == 2
    assert len(stack.containers("scheduler")) == 1


def test_clients_add_prints_the_secret_as_the_last_line(senders: Stack) -> None:
    done = senders.compose("exec", "-T", "api", "hub", "clients", "add", uid("admin"), "--role", "admin")
    secret = done.stdout.strip().splitlines()[-1]
    assert len(secret) >= 40 and " " not in secret
    with senders.client("county") as county:
        hub_id = county.post("/api/v1/messages", json=granted(uid("CTA"))).json()["hub_id"]
    # The admin secret works through lb, on every replica (an admin reads anyone's message).
    for _ in range(4):
        answer = httpx.get(
            f"{URL}/api/v1/messages/{hub_id}", headers={"Authorization": f"Bearer {secret}"}, timeout=10
        )
        assert answer.status_code == 200, answer.text
    bad = httpx.get(
        f"{URL}/api/v1/messages/{hub_id}", headers={"Authorization": "Bearer x" + secret}, timeout=10
    )
    assert bad.status_code == 401


def test_rest_grant_assign_deliver_through_lb(senders: Stack) -> None:
    number = uid("CT")
    grant_and_assign(senders, number, quantity="10")
    with senders.client("provider") as provider, senders.client("county") as county:
        answer = provider.post("/api/v1/messages", json=delivery(number, "2.5"))
        assert answer.status_code == 202, answer.text
        assert wait_status(provider, answer.json()["hub_id"], FINAL)["status"] == "applied"
        voucher = county.get(f"/api/v1/vouchers/{ORGANISER}/{number}").json()
    assert voucher["status"] == "assigned"
    assert voucher["provider"] == PROVIDER
    assert (voucher["quantity_used"], voucher["quantity_remaining"]) == ("2.50", "7.50")
    assert voucher["deliveries"][0]["voucher_share"] == "62.50"


def test_soap_submit_voucher_decision_through_lb(senders: Stack) -> None:
    number = uid("CTS")
    token = UsernameToken(senders.names["county"], senders.secrets["county"])
    soap = zeep.Client(
        f"{URL}/soap/v1?wsdl", wsse=token, transport=Transport(timeout=10, operation_timeout=30)
    )
    decision = soap_granted(number)
    result = soap.service.SubmitVoucherDecision(VoucherDecision=decision)
    assert result.Status == "ACCEPTED"
    with senders.client("county") as county:
        assert wait_status(county, result.HubId, FINAL)["status"] == "applied"
        voucher = county.get(f"/api/v1/vouchers/{ORGANISER}/{number}").json()
    assert (voucher["status"], voucher["quantity"], voucher["unit_value"]) == ("granted", "40.00", "25.00")


def test_provider_delivery_csv_through_the_drop_folder(senders: Stack) -> None:
    number = uid("CTF")
    grant_and_assign(senders, number)
    # A spreadsheet's CSV: UTF-8 with a BOM, CRLF, decimal commas; written by root on the host,
    # as NAME.part and then renamed, in a folder the adapters (uid 10001) did not create.
    rows = [
        "event_id;organiser;voucher_number;order_number;service_date;quantity;unit;price",
        f"{uid('ev')};{ORGANISER};{number};;03.11.2026;2,5;hour;",
        f"{uid('ev')};{ORGANISER};{number};;04.11.2026;1,25;hour;28,00",
    ]
    provider = senders.names["provider"]
    inbox = senders.files_dir / "inbox" / provider
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / "toteumat.csv.part").write_bytes(("\ufeff" + "\r\n".join(rows) + "\r\n").encode())
    (inbox / "toteumat.csv.part").rename(inbox / "toteumat.csv")
    receipt_path = senders.files_dir / "outbox" / provider / "receipts" / "toteumat.csv.receipt.json"
    deadline = time.monotonic() + 60
    while not receipt_path.exists():
        assert time.monotonic() < deadline, f"no receipt; {senders.logs()}"
        time.sleep(0.3)
    receipt = json.loads(receipt_path.read_text(encoding="utf-8"))
    assert (receipt["records"], receipt["accepted"], receipt["rejected"]) == (2, 2, [])
    assert list((senders.files_dir / "archive" / provider).glob("*/toteumat.csv"))
    assert not (inbox / "toteumat.csv").exists()
    with senders.client("county") as county:
        voucher = voucher_when(county, number, "3.75")
    assert sorted(d["voucher_share"] for d in voucher["deliveries"]) == ["31.25", "62.50"]
