"""Privacy against the real processes: the scheduler applies HUB_RETENTION_DAYS to stored
messages, and `hub privacy report` lists where client data is kept, for how long, and what each
place holds now."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, func, select, update
from sqlalchemy.engine import Engine

from psop_hub.hub.tables import audit_log, messages
from tests.e2e.conftest import ROOT, Hub, hub_cli, ready_vouchers, wait_for_status
from tests.e2e.test_filedrop import batch, drop, granted, receipt_of
from tests.messages import delivery, uid
from tests.messages import granted as rest_granted

# Far beyond anything else in the session: only this test's messages are aged that much.
RETENTION_DAYS = 5000


@pytest.fixture(scope="module")
def engine(hub: Hub) -> Iterator[Engine]:
    made = create_engine(hub.env["HUB_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://"))
    yield made
    made.dispose()


def age(engine: Engine, hub_ids: list[str], days: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(messages)
            .where(messages.c.hub_id.in_(hub_ids))
            .values(updated_at=func.now() - func.make_interval(0, 0, 0, days))
        )


def present(engine: Engine, hub_ids: list[str]) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(select(messages.c.hub_id).where(messages.c.hub_id.in_(hub_ids)))
        return {str(r.hub_id) for r in rows}


def test_the_scheduler_removes_resolved_messages_older_than_the_retention(hub: Hub, engine: Engine) -> None:
    (number,) = ready_vouchers(hub, 1, prefix="RET")
    with hub.client("county") as county, hub.client("provider") as provider:
        old = county.post("/api/v1/messages", json=rest_granted(uid("RET"))).json()["hub_id"]
        young = county.post("/api/v1/messages", json=rest_granted(uid("RET"))).json()["hub_id"]
        # A delivery in the wrong unit is rejected by the rules: a failure, kept however old.
        refused = provider.post("/api/v1/messages", json=delivery(number, "1", unit="visit")).json()["hub_id"]
        for hub_id, client in ((old, county), (young, county), (refused, provider)):
            wait_for_status(client, hub_id, {"applied", "rejected", "failed"}, timeout=60)
        assert wait_for_status(provider, refused, {"rejected"})["status"] == "rejected"
    age(engine, [old, refused], RETENTION_DAYS + 1)
    age(engine, [young], RETENTION_DAYS - 1)

    env = {**hub.env, "HUB_RETENTION_DAYS": str(RETENTION_DAYS), "HUB_SCHEDULER_INTERVAL_S": "0.5"}
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "psop_hub.cli", "scheduler"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 60
        while old in present(engine, [old]):
            assert time.monotonic() < deadline, "the scheduler did not apply the retention"
            assert scheduler.poll() is None, scheduler.communicate()[0].decode()[-3000:]
            time.sleep(0.3)
    finally:
        scheduler.send_signal(signal.SIGTERM)
        output = scheduler.communicate(timeout=30)[0].decode()
    assert present(engine, [old, young, refused]) == {young, refused}
    assert f"retention ({RETENTION_DAYS} days): removed" in output, output[-3000:]
    with engine.connect() as conn:
        actors = conn.execute(select(audit_log.c.actor).where(audit_log.c.action == "purge")).scalars().all()
    assert "scheduler" in actors


def test_privacy_report_lists_every_place_with_its_retention_and_contents(hub: Hub) -> None:
    receipt_of(drop(hub, "county", f"report-{uid('f')}.xml", batch(granted(uid("REP")))))
    report = json.loads(hub_cli({**hub.env, "HUB_RETENTION_DAYS": "123"}, "privacy", "report", "--json"))
    assert report["retention_days"] == 123
    places = {p["name"]: p for p in report["places"]}
    assert places["messages"]["personal"] == "HETU" and "payload" in places["messages"]["columns"]
    assert "123 days" in places["messages"]["kept"]
    assert places["messages"]["rows"] is not None and places["messages"]["oldest"]
    for table in ("vouchers", "orders"):
        assert "client_hetu" in places[table]["columns"], places[table]
    archive = places["archive/<client>/YYYY-MM-DD/"]
    assert archive["files"] >= 1 and "123 days" in archive["kept"], archive
    assert "hub_ids" in places["RabbitMQ queue HUB_QUEUE_NAME"]["what"]
    text = hub_cli(hub.env, "privacy", "report")
    assert "table vouchers  [HETU in clear]" in text and "columns: client_hetu" in text, text
    assert "retention: 400 days (HUB_RETENTION_DAYS)" in text, text[:500]
