"""A poison message never stalls the flow: a delivery that always crashes its handler, published
first among 1,000 others on the same voucher, is retried on its own while the rest are applied at
the usual rate, and parked as `failed` (payload, error and every attempt kept) after its allowed
attempts; once parked it blocks nothing, not even its own voucher's next message.

The crash is injected (the handler tables are patched in this process, where the worker runs): no
valid message crashes a handler on purpose. Figures are printed (run with -s to see them)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

import dramatiq
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

from psop_hub.adapters.intake import submit_many
from psop_hub.consumers import handlers
from psop_hub.consumers.apply import apply
from psop_hub.consumers.outcome import Context, Outcome
from psop_hub.consumers.worker import register_actor
from psop_hub.hub.publishing import Publisher
from psop_hub.hub.settings import Settings
from psop_hub.hub.tables import journey, messages
from psop_hub.hub.topology import make_broker
from psop_hub.mappings.canonical import parse_message
from tests.integration.helpers import PROVIDER_SENDER, status_of, stored, voucher_row
from tests.messages import assigned, delivery, granted, uid

OTHERS = 1000


@pytest.fixture
def poison_worker(settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Publisher]:
    """A real worker on a queue of its own; `delivery.reported` with an event id starting
    POISON crashes its handler. A long backoff keeps the poison retrying while the rest flow."""
    real = handlers.HANDLERS["delivery.reported"]

    def crashing(conn: Connection, ctx: Context, payload: Any) -> Outcome:
        if payload.event_id.startswith("POISON"):
            raise RuntimeError("the handler crashed")
        return real(conn, ctx, payload)

    real_batch = handlers.BATCH_HANDLERS["delivery.reported"]

    def crashing_batch(conn: Connection, items: Sequence[tuple[Context, Any]]) -> list[Outcome]:
        if any(payload.event_id.startswith("POISON") for _, payload in items):
            raise RuntimeError("the handler crashed")  # the batch is then applied one by one
        return real_batch(conn, items)

    monkeypatch.setitem(handlers.HANDLERS, "delivery.reported", crashing)
    monkeypatch.setitem(handlers.BATCH_HANDLERS, "delivery.reported", crashing_batch)
    mine = settings.model_copy(
        update={"queue_name": uid("poison"), "min_backoff_ms": 3000, "max_backoff_ms": 6000, "max_retries": 3}
    )
    broker = make_broker(mine)
    register_actor(broker, mine, engine)
    worker = dramatiq.Worker(broker, worker_threads=4)
    worker.start()
    yield Publisher(mine, engine, broker)
    worker.stop(timeout=10_000)
    broker.close()


def _applied(engine: Engine, ids: list[uuid.UUID]) -> int:
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).where(messages.c.hub_id.in_(ids), messages.c.status == "applied")
        ).scalar_one()


def _flow(engine: Engine, publisher: Publisher, number: str, poison: bool) -> tuple[float, list[uuid.UUID]]:
    """Store OTHERS deliveries (the poison first, if asked), publish them, and time until all
    the others are applied."""
    raws = [delivery(number, "1") for _ in range(OTHERS)]
    if poison:
        raws.insert(0, delivery(number, "1", event_id=f"POISON-{uuid.uuid4().hex[:8]}"))
    results = submit_many(engine, PROVIDER_SENDER, [parse_message(r) for r in raws], "rest")
    ids = [r.hub_id for r in results]  # type: ignore[union-attr]
    started = time.monotonic()
    publisher.publish(ids)
    others = ids[1:] if poison else ids
    deadline = started + 120
    while _applied(engine, others) < OTHERS:
        assert time.monotonic() < deadline, f"{_applied(engine, others)} of {OTHERS} applied"
        time.sleep(0.05)
    return time.monotonic() - started, ids


def test_a_poison_message_is_parked_while_a_thousand_others_flow(
    engine: Engine, poison_worker: Publisher
) -> None:
    number = uid("V")
    for raw in (granted(number, quantity="5000"), assigned(number)):
        apply(engine, stored(engine, raw), 1)
    baseline, _ = _flow(engine, poison_worker, number, poison=False)
    with_poison, ids = _flow(engine, poison_worker, number, poison=True)
    poison = ids[0]
    # the others are all applied while the poison is still being retried on its own
    assert status_of(engine, poison).status == "retrying"
    print(
        f"\n{OTHERS} deliveries: {OTHERS / baseline:.0f}/s alone ({baseline:.2f} s), "
        f"{OTHERS / with_poison:.0f}/s with a poison among them ({with_poison:.2f} s)"
    )
    assert OTHERS / with_poison >= (OTHERS / baseline) / 3  # a stall on the poison would cost >10 s

    deadline = time.monotonic() + 60
    while (row := status_of(engine, poison)).status != "failed":
        assert time.monotonic() < deadline, row.status
        time.sleep(0.1)
    assert row.attempts == 4 and row.payload["event_id"].startswith("POISON")
    assert "RuntimeError" in row.errors[0]["message"]
    with engine.connect() as conn:
        steps = list(
            conn.execute(
                select(journey.c.step).where(journey.c.hub_id == poison).order_by(journey.c.at, journey.c.id)
            ).scalars()
        )
    assert steps.count("attempt") == 4 and steps.count("retrying") == 3 and steps[-1] == "failed"

    # parked, it blocks nothing: the voucher's next delivery is applied at once
    after = stored(engine, delivery(number, "2"), PROVIDER_SENDER)
    poison_worker.publish([after])
    deadline = time.monotonic() + 30
    while status_of(engine, after).status != "applied":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert voucher_row(engine, number).quantity_used == Decimal(2 * OTHERS + 2)
