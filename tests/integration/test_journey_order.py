"""The journey is causal: a worker may apply a message before its publish confirm is recorded,
or after it while its transaction began before, and `queued` still comes before the worker's
steps, in order and in time; the status's time is that of the step that set it."""

from __future__ import annotations

import time
from datetime import datetime

import dramatiq
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

from psop_hub.consumers.apply import apply
from psop_hub.consumers.worker import register_actor
from psop_hub.hub import store
from psop_hub.hub.publishing import Publisher
from psop_hub.hub.settings import Settings
from psop_hub.hub.tables import messages
from psop_hub.hub.topology import make_broker
from tests.integration.helpers import PROVIDER_SENDER, stored
from tests.messages import assigned, delivery, granted, uid


def test_a_confirm_recorded_after_the_apply_is_still_queued_before_it(engine: Engine) -> None:
    hub_id = stored(engine, granted(uid("V")))
    assert apply(engine, hub_id, 1).status == "applied"  # the worker was faster than the confirm
    with engine.begin() as conn:
        store.mark_published(conn, [hub_id])
    described = store.describe(engine, hub_id)
    assert described is not None
    steps = described["journey"]
    assert [s["step"] for s in steps] == ["received", "validated", "queued", "attempt", "applied"]
    times = [s["at"] for s in steps]
    assert times == sorted(times)


def test_a_confirm_recorded_before_the_apply_keeps_its_own_time(engine: Engine) -> None:
    hub_id = stored(engine, granted(uid("V")))
    with engine.begin() as conn:
        store.mark_published(conn, [hub_id])
    assert apply(engine, hub_id, 1).status == "applied"
    described = store.describe(engine, hub_id)
    assert described is not None
    assert [s["step"] for s in described["journey"]] == [
        "received",
        "validated",
        "queued",
        "attempt",
        "applied",
    ]


def test_a_worker_whose_transaction_began_before_the_confirm_still_applies_after_it(engine: Engine) -> None:
    # A worker takes the message, its batch's transaction begins; only then the publisher records
    # the broker's confirm (`queued`); then the worker applies it and commits. The applied step
    # and the message's status time are of the moment it was applied, never the transaction's
    # start, which lies before `queued`.
    hub_id = stored(engine, granted(uid("V")))
    with engine.begin() as worker:
        began = worker.execute(text("SELECT now()")).scalar_one()
        time.sleep(0.05)
        with engine.begin() as publisher:
            store.mark_published(publisher, [hub_id])
        time.sleep(0.05)
        assert store.enter_inbox(worker, hub_id, "applied")
        store.finish(worker, hub_id, "applied", "applied", 1)
    described = store.describe(engine, hub_id)
    assert described is not None
    steps = described["journey"]
    assert [s["step"] for s in steps] == ["received", "validated", "queued", "attempt", "applied"]
    times = [datetime.fromisoformat(s["at"]) for s in steps]
    assert times == sorted(times)
    queued, applied = times[2], times[4]
    assert began < queued < applied
    # The status carries the time of the step that set it.
    assert datetime.fromisoformat(described["updated_at"]) == applied
    assert datetime.fromisoformat(described["received_at"]) <= times[0]


def test_journey_times_are_causal_under_load(engine: Engine, settings: Settings) -> None:
    # Many messages published and applied by a real worker at once: in every journey, in the
    # order shown, no step is dated before the one before it, and the status time is the last.
    mine = settings.model_copy(update={"queue_name": uid("journey")})
    broker = make_broker(mine)
    register_actor(broker, mine, engine)
    worker = dramatiq.Worker(broker, worker_threads=4)
    worker.start()
    try:
        number = uid("V")
        apply(engine, stored(engine, granted(number, quantity="1000")), 1)
        apply(engine, stored(engine, assigned(number)), 1)
        ids = [stored(engine, delivery(number, "1"), PROVIDER_SENDER) for _ in range(200)]
        publisher = Publisher(mine, engine, broker)
        for start in range(0, len(ids), 20):
            publisher.publish(ids[start : start + 20])
        deadline = time.monotonic() + 60
        while True:
            with engine.connect() as conn:
                done = conn.execute(
                    select(func.count()).where(messages.c.hub_id.in_(ids), messages.c.status == "applied")
                ).scalar_one()
            if done == len(ids):
                break
            assert time.monotonic() < deadline, f"{done} of {len(ids)} applied"
            time.sleep(0.1)
    finally:
        worker.stop(timeout=10_000)
        broker.close()
    for hub_id in ids:
        described = store.describe(engine, hub_id)
        assert described is not None
        steps = described["journey"]
        assert [s["step"] for s in steps] == ["received", "validated", "queued", "attempt", "applied"], steps
        times = [datetime.fromisoformat(s["at"]) for s in steps]
        assert times == sorted(times), steps
        assert datetime.fromisoformat(described["updated_at"]) >= times[-1]
