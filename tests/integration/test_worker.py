"""The Dramatiq worker in-process against the real broker: a batch of hub_ids in one AMQP
message, with one of them waiting for its voucher, applies the rest at once and retries the
waiting one on its own until its voucher arrives."""

from __future__ import annotations

import time
from collections.abc import Iterator

import dramatiq
import pytest
from sqlalchemy.engine import Engine

from psop_hub.consumers.apply import apply
from psop_hub.consumers.worker import register_actor
from psop_hub.hub.publishing import Publisher
from psop_hub.hub.settings import Settings
from psop_hub.hub.topology import make_broker
from tests.integration.helpers import PROVIDER_SENDER, status_of, stored
from tests.messages import assigned, delivery, granted, uid


@pytest.fixture
def worker_settings(settings: Settings) -> Settings:
    """A queue of this test's own, short backoff."""
    return settings.model_copy(update={"queue_name": uid("wq"), "min_backoff_ms": 100, "max_backoff_ms": 400})


@pytest.fixture
def running_worker(worker_settings: Settings, engine: Engine) -> Iterator[Publisher]:
    """A real Dramatiq worker (4 threads) consuming the test queue; yields a publisher for it."""
    broker = make_broker(worker_settings)
    register_actor(broker, worker_settings, engine)
    worker = dramatiq.Worker(broker, worker_threads=4)
    worker.start()
    yield Publisher(worker_settings, engine, broker)
    worker.stop(timeout=10_000)
    broker.close()


def wait_status(engine: Engine, hub_id: object, wanted: str, timeout: float = 20) -> object:
    """Poll the store until the message has the wanted status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = status_of(engine, hub_id)  # type: ignore[arg-type]
        if row.status == wanted:
            return row
        time.sleep(0.05)
    raise AssertionError(f"{hub_id} is {status_of(engine, hub_id).status}, not {wanted}")  # type: ignore[arg-type]


def test_batch_applies_the_rest_and_retries_the_waiting_one_alone(
    engine: Engine, running_worker: Publisher
) -> None:
    ready, late = uid("V"), uid("LATE")
    for raw in (granted(ready), assigned(ready)):
        apply(engine, stored(engine, raw), 1)
    first = stored(engine, delivery(ready, "1"), PROVIDER_SENDER)
    waiting = stored(engine, delivery(late, "1"), PROVIDER_SENDER)
    last = stored(engine, delivery(ready, "2"), PROVIDER_SENDER)
    running_worker.publish([first, waiting, last])  # one AMQP message
    wait_status(engine, first, "applied")
    wait_status(engine, last, "applied")
    wait_status(engine, waiting, "retrying")
    for raw in (granted(late), assigned(late)):
        apply(engine, stored(engine, raw), 1)
    row = wait_status(engine, waiting, "applied")
    assert row.attempts >= 2  # type: ignore[attr-defined]
