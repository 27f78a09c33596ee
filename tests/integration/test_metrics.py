"""`/metrics` as Prometheus reads it: counts that follow messages as they are accepted, applied,
retried and failed; the queues' depth and consumers from the real broker; a database or broker
that is down reported, not raised; and every metric docs/alerts.md uses is exposed."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.engine import Engine

from psop_hub.api.app import create_app
from psop_hub.bootstrap import api_services
from psop_hub.consumers.apply import apply, record_failure, record_retry
from psop_hub.hub.errors import Waiting
from psop_hub.hub.monitoring import StoreMonitor, replay_job_counts
from psop_hub.hub.senders import add_client
from psop_hub.hub.settings import Settings
from tests.integration.helpers import PROVIDER_SENDER, stored
from tests.messages import ORGANISER, delivery, granted, uid

ALERTS = Path(__file__).resolve().parents[2] / "docs" / "alerts.md"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
# Prometheus scrapes with a token of its own (HUB_METRICS_TOKEN): /metrics is not open by default.
METRICS_TOKEN = "test-metrics-token-0123456789abcdef0123456789"
SCRAPER = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def samples(body: str) -> Samples:
    """Every sample of a scrape by name and labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def value(scraped: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when the series is not there)."""
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """An in-process API on the run's database and vhost."""
    scraping = settings.model_copy(update={"metrics_token": METRICS_TOKEN})
    with TestClient(create_app(api_services(scraping)), headers=SCRAPER) as api:
        yield api


def scrape(client: TestClient) -> Samples:
    """One scrape of /metrics."""
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return samples(answer.text)


def test_counts_follow_messages_through_their_outcomes(client: TestClient, engine: Engine) -> None:
    before = scrape(client)
    assert value(before, "hub_metrics_source_up", source="database") == 1

    number = uid("V")
    grant = stored(engine, granted(number))
    early = stored(engine, delivery(number, "1"), PROVIDER_SENDER)  # its voucher is not applied yet
    lost = stored(engine, delivery(uid("V"), "1"), PROVIDER_SENDER)  # its voucher never comes
    accepted = scrape(client)
    granted_key, delivery_key = {"type": "voucher.granted"}, {"type": "delivery.reported"}
    assert (
        value(accepted, "hub_messages_by_type", **granted_key, status="accepted")
        == value(before, "hub_messages_by_type", **granted_key, status="accepted") + 1
    )
    assert (
        value(accepted, "hub_messages_by_type", **delivery_key, status="accepted")
        == value(before, "hub_messages_by_type", **delivery_key, status="accepted") + 2
    )
    assert (
        value(accepted, "hub_messages", status="accepted")
        == value(before, "hub_messages", status="accepted") + 3
    )
    time.sleep(1.1)
    assert value(scrape(client), "hub_oldest_unapplied_message_age_seconds") >= 1

    assert apply(engine, grant, 1).status == "applied"
    with pytest.raises(Waiting):
        apply(engine, early, 1)
    record_retry(engine, early, 1, "voucher not applied yet", "in 1 s")
    applied = scrape(client)
    for status, change in (("accepted", 0), ("applied", 1)):
        assert (
            value(applied, "hub_messages_by_type", **granted_key, status=status)
            == value(before, "hub_messages_by_type", **granted_key, status=status) + change
        ), status
    assert (
        value(applied, "hub_messages_by_type", **delivery_key, status="retrying")
        == value(before, "hub_messages_by_type", **delivery_key, status="retrying") + 1
    )

    record_failure(engine, lost, 5, "voucher never arrived")
    failed = scrape(client)
    assert value(failed, "hub_messages_failed_waiting") == value(before, "hub_messages_failed_waiting") + 1
    assert (
        value(failed, "hub_messages", status="failed") == value(before, "hub_messages", status="failed") + 1
    )
    assert (
        value(failed, "hub_messages_by_type", **delivery_key, status="failed")
        == value(before, "hub_messages_by_type", **delivery_key, status="failed") + 1
    )


def test_queue_depth_and_consumers_come_from_the_broker(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    secret = add_client(engine, uid("county"), "system", ORGANISER, None)
    main = {"queue": settings.queue_name, "role": "main"}
    before = scrape(client)
    assert value(before, "hub_metrics_source_up", source="broker") == 1
    answer = client.post(
        "/api/v1/messages", json=granted(uid("V")), headers={"Authorization": f"Bearer {secret}"}
    )
    assert answer.status_code == 202
    deadline = time.monotonic() + 15
    while value(scrape(client), "hub_queue_messages", **main) <= value(before, "hub_queue_messages", **main):
        assert time.monotonic() < deadline, "the published message never showed in the queue depth"
        time.sleep(0.2)
    for role, queue in (("delay", f"{settings.queue_name}.DQ"), ("dead_letter", f"{settings.queue_name}.XQ")):
        assert ("hub_queue_consumers", (("queue", queue), ("role", role))) in before

    connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    try:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=1)
        tag = channel.basic_consume(settings.queue_name, lambda *args: None)
        consuming = scrape(client)
        assert (
            value(consuming, "hub_queue_consumers", **main)
            == value(before, "hub_queue_consumers", **main) + 1
        )
        channel.basic_cancel(tag)
        channel.close()  # unacked deliveries go back to the queue
    finally:
        connection.close()
    assert value(scrape(client), "hub_queue_consumers", **main) == value(
        before, "hub_queue_consumers", **main
    )


@pytest.mark.parametrize("down", ["database", "broker"])
def test_a_source_that_is_down_is_reported_not_raised(settings: Settings, down: str) -> None:
    broken = {
        "database": {"database_url": "postgresql://root@127.0.0.1:1/nowhere"},
        "broker": {"amqp_url": "amqp://guest:guest@127.0.0.1:1/%2F"},
    }[down]
    with TestClient(
        create_app(
            api_services(
                settings.model_copy(update={**broken, "relay_interval_s": 60, "metrics_token": METRICS_TOKEN})
            )
        ),
        headers=SCRAPER,
    ) as api:
        scraped = scrape(api)
    assert value(scraped, "hub_metrics_source_up", source=down) == 0
    up = "broker" if down == "database" else "database"
    assert value(scraped, "hub_metrics_source_up", source=up) == 1
    gone = "hub_messages_failed_waiting" if down == "database" else "hub_queue_consumers"
    assert not any(name == gone for name, _ in scraped)


def test_replay_jobs_are_counted_by_state_once_their_table_exists(engine: Engine) -> None:
    with engine.connect() as conn:
        # A temporary table shadows any real one for this connection only.
        conn.execute(text("CREATE TEMPORARY TABLE replay_jobs (id serial, state text NOT NULL)"))
        conn.execute(text("INSERT INTO replay_jobs (state) VALUES ('running'), ('done'), ('done')"))
        assert replay_job_counts(conn) == {"running": 1, "done": 2}
        conn.rollback()


def test_every_metric_the_alerts_use_is_exposed(client: TestClient, engine: Engine) -> None:
    secret = add_client(engine, uid("county"), "system", ORGANISER, None)
    # A process's intake counter has samples once it has received something.
    sent = client.post(
        "/api/v1/messages", json=granted(uid("V")), headers={"Authorization": f"Bearer {secret}"}
    )
    assert sent.status_code == 202
    doc = ALERTS.read_text(encoding="utf-8")
    used = set(re.findall(r"\bhub_[a-z_]+\b", doc))
    assert {
        "hub_messages_failed_waiting",
        "hub_oldest_unapplied_message_age_seconds",
        "hub_queue_consumers",
    } <= used
    body = client.get("/metrics").text
    exposed = {s.name for f in text_string_to_metric_families(body) for s in f.samples}
    exposed |= {f.name for f in text_string_to_metric_families(body)}
    assert used - exposed == set(), f"docs/alerts.md uses metrics /metrics does not expose: {used - exposed}"
    rules = doc.split("```yaml", 1)[1].split("```", 1)[0]
    assert "hub_messages_failed_waiting > 0" in rules and "for: 10m" in rules
    assert "hub_oldest_unapplied_message_age_seconds > 300" in rules


def test_a_large_store_counts_resolved_messages_at_most_every_ttl(engine: Engine, settings: Settings) -> None:
    with engine.begin() as conn:
        conn.execute(text("ANALYZE messages"))  # the planner's estimate decides what is large
    large = settings.model_copy(update={"metrics_exact_rows": 0, "metrics_totals_ttl_s": 300})
    monitor = StoreMonitor(large, engine)
    first = monitor.read()
    hub_id = stored(engine, granted(uid("V")))
    second = monitor.read()
    key_accepted, key_applied = ("voucher.granted", "accepted"), ("voucher.granted", "applied")
    # Unresolved counts are read on every scrape; the resolved ones come from the cached count.
    assert second.by_type_status.get(key_accepted, 0) == first.by_type_status.get(key_accepted, 0) + 1
    assert apply(engine, hub_id, 1).status == "applied"
    third = monitor.read()
    assert third.by_type_status.get(key_applied, 0) == first.by_type_status.get(key_applied, 0)
    assert third.totals_age_s is not None and third.totals_age_s > 0
    exact = StoreMonitor(settings, engine).read()  # below the bound every scrape counts everything
    assert exact.by_type_status.get(key_applied, 0) == first.by_type_status.get(key_applied, 0) + 1
