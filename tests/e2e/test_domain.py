"""The domain end to end through REST: contention on one voucher, orders, corrections."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.e2e.conftest import Hub, wait_for_status
from tests.messages import (
    ORGANISER,
    assigned,
    cancelled,
    corrected,
    delivery,
    granted,
    order_delivery,
    placed,
    uid,
)

FINAL = {"applied", "rejected", "failed", "superseded"}


def test_200_one_hour_deliveries_on_a_100_hour_voucher(hub: Hub) -> None:
    number = uid("RUSH")
    with hub.client("county") as county:
        for raw in (granted(number, quantity="100"), assigned(number)):
            wait_for_status(county, county.post("/api/v1/messages", json=raw).json()["hub_id"], {"applied"})

    def send(_: int) -> str:
        with hub.client("provider") as provider:  # a connection of its own, as separate senders
            answer = provider.post("/api/v1/messages", json=delivery(number, "1"))
            assert answer.status_code == 202, answer.text
            return str(answer.json()["hub_id"])

    with ThreadPoolExecutor(32) as pool:
        hub_ids = list(pool.map(send, range(200)))
    statuses: list[str] = []
    with hub.client("provider") as provider:
        deadline = time.monotonic() + 120
        for hub_id in hub_ids:
            body = wait_for_status(provider, hub_id, FINAL, timeout=max(1.0, deadline - time.monotonic()))
            statuses.append(str(body["status"]))
            if body["status"] == "rejected":
                assert body["errors"][0]["field"] == "payload.quantity"  # type: ignore[index]
        voucher = provider.get(f"/api/v1/vouchers/{ORGANISER}/{number}").json()
    assert statuses.count("applied") == 100
    assert statuses.count("rejected") == 100
    assert voucher["quantity_used"] == "100.00"
    assert voucher["quantity_remaining"] == "0.00"
    assert len(voucher["deliveries"]) == 100


def test_order_with_correction_and_cancellation(hub: Hub) -> None:
    number = uid("ORD")
    with hub.client("county") as county, hub.client("provider") as provider:
        wait_for_status(county, _post(county, placed(number, quantity="10", unit_price="42.00")), {"applied"})
        first, second = order_delivery(number, "2"), order_delivery(number, "3")
        for raw in (first, second):
            assert wait_for_status(provider, _post(provider, raw), FINAL)["status"] == "applied"
        ev1, ev2 = first["payload"]["event_id"], second["payload"]["event_id"]
        assert (
            wait_for_status(provider, _post(provider, corrected(ev1, 2, "1")), FINAL)["status"] == "applied"
        )
        assert wait_for_status(provider, _post(provider, cancelled(ev2, 2)), FINAL)["status"] == "applied"
        stale = wait_for_status(provider, _post(provider, corrected(ev1, 2, "4")), FINAL)
        assert stale["status"] == "superseded"
        order = county.get(f"/api/v1/orders/{ORGANISER}/{number}").json()
    assert order["quantity_used"] == "1.00"
    by_event = {d["event_id"]: d for d in order["deliveries"]}
    # An order's delivery names what the organiser pays neutrally: there is no voucher.
    assert by_event[ev1]["organiser_share"] == "42.00"
    assert "voucher_share" not in by_event[ev1]
    assert by_event[ev2]["status"] == "cancelled"
    with hub.client("other-provider") as other:
        assert other.get(f"/api/v1/orders/{ORGANISER}/{number}").status_code == 404


def _attempts(client: httpx.Client, hub_id: str) -> int:
    return sum(s["step"] == "attempt" for s in client.get(f"/api/v1/messages/{hub_id}").json()["journey"])


def test_deliveries_waiting_for_their_order_are_applied_in_the_order_received(hub: Hub) -> None:
    # The first delivery has waited long (its next retry is seconds away), the second only just
    # (its next is a few hundred ms away): when the order arrives, the first still goes first
    # and takes the quantity; the second no longer fits. Before, the second's shorter pause let
    # it overtake and take the remaining quantity.
    number = uid("WAIT")
    with hub.client("county") as county, hub.client("provider") as provider:
        first = _post(provider, order_delivery(number, "3"))
        deadline = time.monotonic() + 30
        while _attempts(provider, first) < 2:
            assert time.monotonic() < deadline, provider.get(f"/api/v1/messages/{first}").text
            time.sleep(0.05)
        second = _post(provider, order_delivery(number, "2"))
        while _attempts(provider, second) < 1:
            assert time.monotonic() < deadline, provider.get(f"/api/v1/messages/{second}").text
            time.sleep(0.02)
        assert wait_for_status(provider, first, {"retrying"})["errors"][0]["waiting"] is True  # type: ignore[index]
        wait_for_status(county, _post(county, placed(number, quantity="4")), {"applied"})
        done_first = wait_for_status(provider, first, FINAL)
        done_second = wait_for_status(provider, second, FINAL)
        order = county.get(f"/api/v1/orders/{ORGANISER}/{number}").json()
    assert done_first["status"] == "applied", done_first
    assert done_second["status"] == "rejected", done_second
    assert done_second["errors"][0]["rule"] == "within_quantity"  # type: ignore[index]
    assert order["quantity_used"] == "3.00"


def _post(client: httpx.Client, raw: dict[str, object]) -> str:
    answer = client.post("/api/v1/messages", json=raw)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["hub_id"])
