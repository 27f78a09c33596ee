"""The admin API (INTERFACES §3) against `hub run` as a real process: the journey of every
outcome, search, one message with its payload, replay (plain and edited), the bad day's bulk
replay, the audit log and its CSV export, and the `hub messages` / `hub replay` / `hub purge`
commands."""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any

import httpx

from tests.e2e.conftest import Hub, hub_cli, wait_for_status
from tests.messages import HETU, ORGANISER, amended, assigned, delivery, granted, uid

FINAL = {"applied", "rejected", "failed", "superseded", "replaced"}


def send(client: httpx.Client, raw: dict[str, Any]) -> str:
    """POST one message; its hub_id."""
    answer = client.post("/api/v1/messages", json=raw)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["hub_id"])


def steps_of(body: dict[str, Any]) -> list[str]:
    """The step names of a message's journey."""
    return [s["step"] for s in body["journey"]]


def total(admin: httpx.Client, **params: Any) -> int:
    """How many messages an admin search matches."""
    answer = admin.get("/api/v1/admin/messages", params={**params, "limit": 1, "counts": "false"})
    assert answer.status_code == 200, answer.text
    return int(answer.json()["total"])


def wait_total(admin: httpx.Client, wanted: int, timeout: float = 180, **params: Any) -> None:
    """Poll the admin search until it matches `wanted` messages."""
    deadline = time.monotonic() + timeout
    while (found := total(admin, **params)) != wanted:
        assert time.monotonic() < deadline, f"{found} messages match {params}, not {wanted}"
        time.sleep(0.5)


def test_the_journey_of_every_outcome(hub: Hub) -> None:
    number = uid("J")
    with hub.client("county") as county, hub.client("provider") as provider, hub.client("admin") as admin:
        late = send(provider, delivery(number, "1"))  # its voucher is not there yet: it waits
        grant = send(county, granted(number, quantity="10"))
        applied = wait_for_status(county, grant, FINAL)
        assert applied["status"] == "applied"
        assert steps_of(applied) == ["received", "validated", "queued", "attempt", "applied"]

        failed = wait_for_status(provider, late, {"failed"}, timeout=90)  # never assigned
        assert steps_of(failed).count("retrying") == 4 and steps_of(failed)[-1] == "failed"
        waits = [s["detail"] for s in failed["journey"] if s["step"] == "retrying"]
        # each wait says for what: the voucher, then (once granted) its provider
        assert all("has not arrived yet" in w or "no provider assigned yet" in w for w in waits)
        assert "no provider assigned yet" in waits[-1]
        shown = admin.get(f"/api/v1/admin/messages/{late}").json()
        assert shown["payload"]["voucher_number"] == number and shown["attempts"] == 5
        assert "no provider assigned yet" in shown["last_error"]

        send(county, assigned(number))
        replayed = admin.post(f"/api/v1/admin/messages/{late}/replay", json={"reason": "assigned now"})
        assert replayed.status_code == 202 and replayed.json()["outcome"] == "queued"
        after = wait_for_status(provider, late, {"applied"})
        tail = steps_of(after)[steps_of(after).index("failed") :]
        assert tail[:2] == ["failed", "replayed"] and tail[-2:] == ["attempt", "applied"]
        detail = next(s["detail"] for s in after["journey"] if s["step"] == "replayed")
        assert detail == "by admin: assigned now"
        again = admin.post(f"/api/v1/admin/messages/{late}/replay")
        assert again.status_code == 200 and again.json()["outcome"] == "skipped"
        assert again.json()["detail"].startswith("already applied")

        rejected = wait_for_status(provider, send(provider, delivery(number, "1", unit="day")), FINAL)
        assert rejected["status"] == "rejected" and rejected["errors"][0]["field"] == "payload.unit"
        assert steps_of(rejected)[-1] == "rejected"

        first = wait_for_status(county, send(county, amended(number, 2, quantity="12")), FINAL)
        stale = wait_for_status(county, send(county, amended(number, 2, quantity="11")), FINAL)
        assert (first["status"], stale["status"]) == ("applied", "superseded")
        assert steps_of(stale)[-1] == "superseded"

        # the sender sees its messages; only admins reach the admin API
        assert county.get("/api/v1/admin/messages").status_code == 403
        assert provider.get(f"/api/v1/admin/messages/{late}").status_code == 403
        assert provider.post(f"/api/v1/admin/messages/{late}/replay").status_code == 403


def test_edited_replay_invalid_refused_valid_applied_once_original_replaced(hub: Hub) -> None:
    number = uid("E")
    with hub.client("county") as county, hub.client("provider") as provider, hub.client("admin") as admin:
        for raw in (granted(number, quantity="10"), assigned(number)):
            wait_for_status(county, send(county, raw), {"applied"})
        wrong = delivery(number, "3", unit="visit")
        hub_id = send(provider, wrong)
        assert wait_for_status(provider, hub_id, FINAL)["status"] == "rejected"
        bad = {**wrong["payload"], "quantity": "-1", "service_date": "yesterday", "unit": "hour"}
        refused = admin.post(f"/api/v1/admin/messages/{hub_id}/replay", json={"payload": bad, "reason": "x"})
        assert refused.status_code == 422
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert {e["field"] for e in refused.json()["errors"]} == {"payload.quantity", "payload.service_date"}
        assert admin.get(f"/api/v1/admin/messages/{hub_id}").json()["status"] == "rejected"

        fixed = {**wrong["payload"], "unit": "hour"}
        answer = admin.post(
            f"/api/v1/admin/messages/{hub_id}/replay", json={"payload": fixed, "reason": "hours, not visits"}
        )
        assert answer.status_code == 202, answer.text
        copy = answer.json()["copy_hub_id"]
        assert wait_for_status(provider, copy, FINAL)["status"] == "applied"  # the sender sees the copy
        original = admin.get(f"/api/v1/admin/messages/{hub_id}").json()
        assert original["status"] == "replaced" and original["replaced_by"] == [copy]
        assert original["payload"] == wrong["payload"]
        assert provider.get(f"/api/v1/messages/{hub_id}").json()["status"] == "replaced"
        assert admin.get(f"/api/v1/admin/messages/{copy}").json()["replay_of"] == hub_id
        twice = admin.post(f"/api/v1/admin/messages/{hub_id}/replay", json={"payload": fixed})
        assert twice.status_code == 409
        voucher = county.get(f"/api/v1/vouchers/{ORGANISER}/{number}").json()
        assert voucher["quantity_used"] == "3.00" and len(voucher["deliveries"]) == 1


def test_a_bad_day_500_deliveries_failed_then_one_bulk_replay(hub: Hub) -> None:
    number = uid("BAD")
    count = 500
    with hub.client("county") as county, hub.client("provider") as provider, hub.client("admin") as admin:
        for _ in range(count):
            send(provider, delivery(number, "1"))
        wait_total(admin, count, status="failed", q=number)  # each after its attempts: no voucher
        for raw in (granted(number, quantity="1000"), assigned(number)):
            wait_for_status(county, send(county, raw), {"applied"})

        flt = {"status": ["failed"], "q": number, "type": "delivery.reported"}
        no_reason = admin.post("/api/v1/admin/replay", json={"filter": flt, "dry_run": True})
        assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "reason"
        dry = admin.post(
            "/api/v1/admin/replay", json={"filter": flt, "dry_run": True, "reason": "voucher late"}
        )
        assert dry.status_code == 200, dry.text
        plan = dry.json()
        assert plan["matched"] == count and plan["statuses"] == {"failed": count}
        assert len(plan["sample"]) == 10 and all(m["status"] == "failed" for m in plan["sample"])
        assert total(admin, status="failed", q=number) == count  # a dry run replays nothing

        run = admin.post("/api/v1/admin/replay", json={"plan_id": plan["plan_id"], "reason": "voucher late"})
        assert run.status_code in (200, 202), run.text
        job_url = run.headers["location"]
        job = run.json()
        deadline = time.monotonic() + 180
        while job["status"] != "done":
            assert time.monotonic() < deadline, job
            time.sleep(0.5)
            job = admin.get(job_url).json()
        assert (job["matched"], job["queued"], job["skipped"]) == (
            count,
            count,
            {"already_applied": 0, "no_longer_failed": 0},
        )
        wait_total(admin, count, status="applied", q=number, type="delivery.reported")
        assert admin.get(job_url).json()["queued_now"] == {"applied": count}
        voucher = county.get(f"/api/v1/vouchers/{ORGANISER}/{number}").json()
        assert voucher["quantity_used"] == f"{count}.00" and len(voucher["deliveries"]) == count

        # the same replay again does nothing, and says so
        assert (
            admin.post("/api/v1/admin/replay", json={"plan_id": plan["plan_id"], "reason": "x"}).status_code
            == 409
        )
        again = admin.post("/api/v1/admin/replay", json={"filter": flt, "reason": "again"}).json()
        assert (again["matched"], again["queued"]) == (0, 0)

        audit = admin.get("/api/v1/admin/audit", params={"actor": "admin", "limit": 50}).json()["entries"]
        mine = [e for e in audit if e["job_id"] == plan["plan_id"]]
        assert [e["action"] for e in mine] == ["replay.start", "replay.dry_run"]  # newest first
        assert mine[0]["detail"]["matched"] == count and mine[0]["reason"] == "voucher late"


def test_search_show_reveal_and_the_audit_log_as_csv(hub: Hub) -> None:
    number = uid("S")
    with hub.client("county") as county, hub.client("admin") as admin:
        raw = granted(number)
        raw["correlation_id"] = uid("corr")
        hub_id = send(county, raw)
        wait_for_status(county, hub_id, {"applied"})
        found = admin.get("/api/v1/admin/messages", params={"q": raw["correlation_id"]}).json()
        assert found["total"] == 1 and found["messages"][0]["hub_id"] == hub_id
        assert found["counts"]["applied"] == 1 and sum(found["counts"].values()) == 1
        bad = admin.get("/api/v1/admin/messages", params={"status": "lost", "since": "monday"})
        assert bad.status_code == 422 and {e["field"] for e in bad.json()["errors"]} == {"status", "since"}

        masked = admin.get(f"/api/v1/admin/messages/{hub_id}")
        assert HETU not in masked.text and masked.json()["payload"]["client"]["hetu"] == "131052-****"
        revealed = admin.get(
            f"/api/v1/admin/messages/{hub_id}", params={"reveal": "true", "reason": "ticket 7"}
        )
        assert revealed.json()["payload"]["client"]["hetu"] == HETU

        log = admin.get("/api/v1/admin/audit", params={"actor": "admin"}).json()["entries"]
        reads = [e for e in log if e["action"] == "message.read" and e["hub_ids"] == [hub_id]]
        assert [(e["detail"]["revealed"], e["reason"]) for e in reads] == [(True, "ticket 7"), (False, "")]
        exported = admin.get("/api/v1/admin/audit", params={"actor": "admin"}, headers={"accept": "text/csv"})
        assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert rows[0]["action"] == "audit.export" and HETU not in exported.text
        assert any(r["action"] == "message.read" and r["hub_ids"] == hub_id for r in rows)
        assert admin.get("/api/v1/admin/audit", params={"format": "csv"}).text.startswith("id,at,actor")


def test_the_admin_commands(hub: Hub) -> None:
    number = uid("CLI")
    with hub.client("provider") as provider, hub.client("admin") as admin:
        hub_id = send(provider, delivery(number, "1"))
        wait_for_status(provider, hub_id, {"failed"}, timeout=90)
        listed = hub_cli(hub.env, "messages", "search", "--q", number, "--status", "failed")
        assert listed.splitlines()[0].startswith("1 messages match") and hub_id in listed
        as_json = json.loads(hub_cli(hub.env, "messages", "search", "--q", number, "--json"))
        assert as_json["total"] == 1 and as_json["counts"]["failed"] == 1
        shown = hub_cli(hub.env, "messages", "show", hub_id)
        assert "status:         failed" in shown and "journey:" in shown and number in shown
        dry = hub_cli(hub.env, "replay", "--q", number, "--dry-run")
        assert dry.startswith("1 messages would be replayed (failed 1)")
        plan = dry.strip().splitlines()[-1].split("--plan ")[1].split()[0]
        done = hub_cli(hub.env, "replay", "--plan", plan, "--reason", "from the shell")
        assert "matched 1, queued 1" in done
        assert admin.get(f"/api/v1/admin/messages/{hub_id}").json()["status"] in ("accepted", "retrying")
        purged = hub_cli(hub.env, "purge", "--older-than", "3650", "--dry-run")
        assert "would remove" in purged and "would mask the client's HETU of" in purged, purged
        log = admin.get("/api/v1/admin/audit", params={"action": "replay.start"}).json()["entries"]
        assert log[0]["job_id"] == plan and log[0]["actor"].startswith("cli:")
