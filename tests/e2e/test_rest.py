"""REST as a partner uses it, against `hub run` as a real process."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import Hub, wait_for_status
from tests.messages import (
    HETU,
    ORGANISER,
    OTHER_ORGANISER,
    PROVIDER,
    approval,
    assigned,
    delivery,
    granted,
    uid,
)

FINAL = {"applied", "rejected", "failed", "superseded"}


def send(client: httpx.Client, raw: dict[str, object]) -> httpx.Response:
    """POST one message."""
    return client.post("/api/v1/messages", json=raw)


def test_voucher_flow_grant_assign_deliver(hub: Hub) -> None:
    number = uid("PS")
    with hub.client("county") as county, hub.client("provider") as provider:
        for raw in (granted(number, quantity="10"), assigned(number, price="30.00")):
            answer = send(county, raw)
            assert answer.status_code == 202, answer.text
            assert answer.json()["status"] == "accepted"
            wait_for_status(county, answer.json()["hub_id"], {"applied"})
        answer = send(provider, delivery(number, "2.5"))
        assert answer.status_code == 202
        body = wait_for_status(provider, answer.json()["hub_id"], FINAL)
        assert body["status"] == "applied"
        steps = [s["step"] for s in body["journey"]]  # type: ignore[attr-defined]
        assert steps[:2] == ["received", "validated"]
        assert "queued" in steps and steps[-2:] == ["attempt", "applied"]
        voucher = county.get(f"/api/v1/vouchers/{ORGANISER}/{number}").json()
        assert voucher["quantity_used"] == "2.50"
        assert voucher["quantity_remaining"] == "7.50"
        assert voucher["deliveries"][0]["voucher_share"] == "62.50"
        assert voucher["deliveries"][0]["client_share"] == "12.50"
        assert HETU not in county.get(f"/api/v1/vouchers/{ORGANISER}/{number}").text
        # the assigned provider sees it, another provider and another county do not
        assert provider.get(f"/api/v1/vouchers/{ORGANISER}/{number}").status_code == 200
    with hub.client("other-provider") as other, hub.client("other-county") as other_county:
        assert other.get(f"/api/v1/vouchers/{ORGANISER}/{number}").status_code == 404
        assert other_county.get(f"/api/v1/vouchers/{ORGANISER}/{number}").status_code == 404


def test_duplicate_answers_200_with_first_hub_id_and_conflict_409(hub: Hub) -> None:
    raw = granted(uid("PS"))
    with hub.client("county") as county:
        first = send(county, raw)
        again = send(county, raw)
        assert (first.status_code, again.status_code) == (202, 200)
        assert again.json()["hub_id"] == first.json()["hub_id"]
        assert again.json()["status"] == "duplicate"
        changed = {**raw, "payload": {**raw["payload"], "quantity": "7"}}  # type: ignore[dict-item]
        conflict = send(county, changed)
        assert conflict.status_code == 409
        assert conflict.headers["content-type"] == "application/problem+json"
        assert conflict.json()["hub_id"] == first.json()["hub_id"]
        assert wait_for_status(county, first.json()["hub_id"], FINAL)["status"] == "applied"


def test_invalid_message_lists_every_error_and_stores_nothing(hub: Hub) -> None:
    raw = granted(uid("PS"), unit_value="-1", quantity="0", valid_to="2020-01-01")
    raw["payload"]["client"] = {"hetu": "131052-308U", "home_municipality": "91"}  # type: ignore[index]
    with hub.client("county") as county:
        answer = send(county, raw)
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    fields = {e["field"] for e in answer.json()["errors"]}
    assert {
        "payload.unit_value",
        "payload.quantity",
        "payload.valid_to",
        "payload.client.hetu",
        "payload.client.home_municipality",
    } <= fields
    assert "131052-308U" not in answer.text


def test_authentication_and_scope(hub: Hub) -> None:
    raw = granted(uid("PS"))
    with hub.client(None) as anonymous:
        assert send(anonymous, raw).status_code == 401
        wrong = anonymous.post("/api/v1/messages", json=raw, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
    with hub.client("other-county") as other:
        forbidden = send(other, raw)
        assert forbidden.status_code == 403
        assert "organiser" in forbidden.json()["detail"]
    with hub.client("provider") as provider:
        assert send(provider, raw).status_code == 403
    with hub.client("admin") as admin:
        assert send(admin, raw).status_code == 403


def test_message_status_is_only_for_its_sender_and_admins(hub: Hub) -> None:
    with hub.client("county") as county:
        hub_id = send(county, granted(uid("PS"))).json()["hub_id"]
        assert county.get(f"/api/v1/messages/{hub_id}").status_code == 200
        assert county.get("/api/v1/messages/not-a-uuid").status_code == 404
    with hub.client("other-county") as other:
        assert other.get(f"/api/v1/messages/{hub_id}").status_code == 404
    with hub.client("admin") as admin:
        assert admin.get(f"/api/v1/messages/{hub_id}").json()["sender"] == "county"


def test_a_sender_finds_its_own_message_by_its_own_id_and_no_one_elses(hub: Hub) -> None:
    shared_id = uid("MID")  # two senders may use one message_id: each has its own message
    mine, theirs = granted(uid("PS")), granted(uid("PS"))
    mine["message_id"] = shared_id
    theirs["message_id"] = shared_id
    theirs["payload"]["organiser"] = OTHER_ORGANISER
    only_mine = granted(uid("PS"))
    with hub.client("county") as county, hub.client("other-county") as other:
        my_hub_id = send(county, mine).json()["hub_id"]
        their_hub_id = send(other, theirs).json()["hub_id"]
        only_hub_id = send(county, only_mine).json()["hub_id"]
        wait_for_status(county, my_hub_id, FINAL)

        found = county.get("/api/v1/messages", params={"message_id": shared_id})
        assert found.status_code == 200, found.text
        by_hub_id = county.get(f"/api/v1/messages/{my_hub_id}").json()
        assert found.json()["hub_id"] == my_hub_id
        assert found.json()["message_id"] == shared_id and found.json()["sender"] == "county"
        assert found.json()["journey"][:2] == by_hub_id["journey"][:2]
        assert (
            other.get("/api/v1/messages", params={"message_id": shared_id}).json()["hub_id"] == their_hub_id
        )

        # Another sender's id is not found: 404 as for an id nobody used, nothing of it shown.
        leaked = other.get("/api/v1/messages", params={"message_id": only_mine["message_id"]})
        assert leaked.status_code == 404
        assert only_hub_id not in leaked.text and leaked.headers["content-type"].startswith(
            "application/problem+json"
        )
        assert county.get("/api/v1/messages", params={"message_id": uid("NOBODY")}).status_code == 404
        assert county.get("/api/v1/messages", params={"message_id": "a\x00b"}).status_code == 404
        assert county.get("/api/v1/messages").status_code == 400
        assert county.get("/api/v1/messages", params={"message_id": "x" * 101}).status_code == 400
    with hub.client("provider") as provider:
        assert provider.get("/api/v1/messages", params={"message_id": shared_id}).status_code == 404
    with hub.client(None) as anonymous:
        assert anonymous.get("/api/v1/messages", params={"message_id": shared_id}).status_code == 401


def test_bad_bodies(hub: Hub) -> None:
    with hub.client("county") as county:
        not_json = county.post(
            "/api/v1/messages", content=b"{nope", headers={"content-type": "application/json"}
        )
        assert not_json.status_code == 400
        too_big = county.post("/api/v1/messages", content=b"x" * (1_048_576 + 10))
        assert too_big.status_code == 413
        not_object = county.post("/api/v1/messages", json=[1, 2])
        assert not_object.status_code == 422


def test_delivery_whose_voucher_never_comes_ends_failed_with_each_wait(hub: Hub) -> None:
    with hub.client("provider") as provider:
        hub_id = send(provider, delivery(uid("NEVER"))).json()["hub_id"]
        body = wait_for_status(provider, hub_id, {"failed"}, timeout=60)
    steps = [s["step"] for s in body["journey"]]  # type: ignore[attr-defined]
    assert steps.count("retrying") == 4  # HUB_MAX_RETRIES in the test environment
    assert steps.count("attempt") == 5
    assert "has not arrived yet" in body["errors"][0]["message"]  # type: ignore[index]


def test_delivery_sent_before_its_voucher_is_applied_when_it_arrives(hub: Hub) -> None:
    number = uid("LATE")
    with hub.client("provider") as provider, hub.client("county") as county:
        hub_id = send(provider, delivery(number, "1")).json()["hub_id"]
        wait_for_status(provider, hub_id, {"retrying"})
        for raw in (granted(number), assigned(number)):
            assert send(county, raw).status_code == 202
        assert wait_for_status(provider, hub_id, FINAL, timeout=60)["status"] == "applied"


def test_health_metrics_openapi(hub: Hub) -> None:
    with hub.client(None) as anonymous:
        assert anonymous.get("/health/live").status_code == 200
        ready = anonymous.get("/health/ready")
        assert ready.status_code == 200 and ready.json()["checks"] == {"database": "up", "broker": "up"}
        assert anonymous.get("/metrics").status_code == 401  # docs/operations.md: not open by default
    with hub.client("admin") as admin:
        metrics = admin.get("/metrics").text
    with hub.client(None) as anonymous:
        assert "hub_messages_received_total" in metrics
        assert 'hub_messages{status="applied"}' in metrics
        assert "/api/v1/messages" in anonymous.get("/openapi.json").json()["paths"]


def test_a_provider_cannot_take_another_organisers_voucher_until_approved(hub: Hub) -> None:
    # The outside tester's finding: a provider naming itself in voucher.assigned took any
    # organiser's unassigned voucher, then read it, reported deliveries and got settled.
    number = uid("TAKE")
    take = assigned(number)
    take["payload"]["organiser"] = OTHER_ORGANISER
    with hub.client("other-county") as other_county, hub.client("provider") as provider:
        grant = send(other_county, granted(number, organiser=OTHER_ORGANISER))
        wait_for_status(other_county, grant.json()["hub_id"], {"applied"})
        answer = send(provider, take)
        assert answer.status_code == 202, answer.text
        body = wait_for_status(provider, answer.json()["hub_id"], FINAL)
        assert body["status"] == "rejected", body
        assert body["errors"] == [  # type: ignore[comparison-overlap]
            {
                "field": "payload.provider",
                "message": f"provider {PROVIDER} is not approved by organiser {OTHER_ORGANISER} for "
                "service KH01 on 2026-11-01: it has no approval from this organiser",
                "rule": "approved_provider",
            }
        ]
        assert body["journey"][-1]["detail"].startswith("approved_provider: ")  # type: ignore[index]
        # not its voucher: answered exactly like a missing one, and it cannot report against it
        seen = provider.get(f"/api/v1/vouchers/{OTHER_ORGANISER}/{number}")
        missing = provider.get(f"/api/v1/vouchers/{OTHER_ORGANISER}/{number}-x")
        assert (seen.status_code, seen.headers["content-type"]) == (404, "application/problem+json")
        assert seen.json() == {**missing.json(), "detail": seen.json()["detail"]}
        assert seen.json()["detail"] == missing.json()["detail"].replace(f"{number}-x", number)
        report = delivery(number, "1")
        report["payload"]["organiser"] = OTHER_ORGANISER
        sent = send(provider, report)
        # an unassigned voucher's delivery waits for an assignment that never comes, then fails
        refused = wait_for_status(provider, sent.json()["hub_id"], FINAL, timeout=60)
        assert refused["status"] == "failed", refused
        state = other_county.get(f"/api/v1/vouchers/{OTHER_ORGANISER}/{number}").json()
        assert (state["provider"], state["quantity_used"], state["deliveries"]) == (None, "0.00", [])

        # a provider may not approve itself
        self_approval = send(provider, approval(organiser=OTHER_ORGANISER))
        assert self_approval.status_code == 403, self_approval.text
        assert self_approval.headers["content-type"] == "application/problem+json"

        # once the organiser approves it for the service, the client's choice of it is applied
        approve = send(other_county, approval(organiser=OTHER_ORGANISER, service_codes=["KH01"]))
        wait_for_status(other_county, approve.json()["hub_id"], {"applied"})
        again = send(provider, {**take, "message_id": uid()})
        assert wait_for_status(provider, again.json()["hub_id"], FINAL)["status"] == "applied"
        assert provider.get(f"/api/v1/vouchers/{OTHER_ORGANISER}/{number}").json()["provider"] == PROVIDER
