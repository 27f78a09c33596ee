"""`/metrics` of a running `hub run`: the workers consuming, and counts that follow a message."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Hub, wait_for_status
from tests.messages import granted, uid


def scrape(hub: Hub) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """One scrape, with an admin's secret (/metrics is not open to anyone by default)."""
    with hub.client("admin") as admin:
        answer = admin.get("/metrics")
    assert answer.status_code == 200, answer.text
    body = answer.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(body)
        for s in f.samples
    }


def test_workers_consuming_and_applied_counts(hub: Hub) -> None:
    before = scrape(hub)
    consumers = [
        v
        for (name, labels), v in before.items()
        if name == "hub_queue_consumers" and ("role", "main") in labels
    ]
    assert consumers and consumers[0] >= 2  # hub run starts two workers
    key = ("hub_messages_by_type", (("status", "applied"), ("type", "voucher.granted")))
    with hub.client("county") as county:
        hub_id = county.post("/api/v1/messages", json=granted(uid("MET"))).json()["hub_id"]
        assert wait_for_status(county, hub_id, {"applied"})["status"] == "applied"
    after = scrape(hub)
    assert after[key] >= before.get(key, 0) + 1
    assert after[("hub_metrics_source_up", (("source", "broker"),))] == 1
    assert after[("hub_metrics_source_up", (("source", "database"),))] == 1
