"""Publishing with confirms to durable quorum queues, and the relay for what the broker missed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pika
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.engine import Engine

from psop_hub.hub.deadletters import DeadLetters
from psop_hub.hub.privacy import mask_text
from psop_hub.hub.publishing import Publisher, Relay
from psop_hub.hub.settings import Settings
from psop_hub.hub.tables import journey, messages, outbox
from psop_hub.hub.topology import apply_request, make_broker
from tests.integration.helpers import status_of, stored
from tests.messages import HETU, granted, uid


@pytest.fixture
def queue_settings(settings: Settings) -> Settings:
    """Settings with a queue of this test's own, so nothing else consumes from it."""
    return settings.model_copy(update={"queue_name": uid("q")})


@pytest.fixture
def channel(settings: Settings) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    """A plain pika channel on this run's vhost, to look into the queues."""
    conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    yield conn.channel()
    conn.close()


def drain(channel: pika.adapters.blocking_connection.BlockingChannel, queue: str) -> list[str]:
    """The hub_ids waiting in a queue (acked, so the queue is empty afterwards)."""
    found = []
    while True:
        method, _, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return found
        found.extend(json.loads(body)["args"][0])


def published(engine: Engine, hub_id: object) -> bool:
    """True once RabbitMQ confirmed the message (its outbox row is gone)."""
    with engine.connect() as conn:
        return conn.execute(select(outbox.c.hub_id).where(outbox.c.hub_id == hub_id)).first() is None


def test_only_hub_ids_travel_no_hetu_in_headers_or_body(
    engine: Engine, queue_settings: Settings, channel: object
) -> None:
    # The message of a voucher.granted (the client's HETU in its payload), first and retried.
    hub_id = stored(engine, granted(uid("V")))
    Publisher(queue_settings, engine, make_broker(queue_settings)).try_publish([hub_id])
    broker = make_broker(queue_settings)
    broker.enqueue(apply_request(queue_settings, [str(hub_id)], retries=3, outages=1))
    for _ in range(2):
        method, properties, body = channel.basic_get(queue_settings.queue_name, auto_ack=True)  # type: ignore[attr-defined]
        assert method is not None
        headers = json.dumps(properties.headers or {}, default=str)
        assert HETU not in headers and mask_text(headers) == headers, headers
        assert HETU not in body.decode() and mask_text(body.decode()) == body.decode(), body
        message = json.loads(body)
        assert message["args"] == [[str(hub_id)]] and message["kwargs"] == {}, message
        assert set(message["options"]) <= {"retries", "outages"}, message


def test_publish_confirms_and_marks(engine: Engine, queue_settings: Settings, channel: object) -> None:
    publisher = Publisher(queue_settings, engine, make_broker(queue_settings))
    hub_id = stored(engine, granted(uid("V")))
    assert publisher.try_publish([hub_id])
    assert published(engine, hub_id)
    declared = channel.queue_declare(queue_settings.queue_name, passive=True)  # type: ignore[attr-defined]
    assert declared.method.message_count == 1
    assert drain(channel, queue_settings.queue_name) == [str(hub_id)]  # type: ignore[arg-type]
    publisher.broker.close()


def test_queue_is_a_durable_quorum_queue(engine: Engine, queue_settings: Settings, channel: object) -> None:
    publisher = Publisher(queue_settings, engine, make_broker(queue_settings))
    publisher.try_publish([stored(engine, granted(uid("V")))])
    # Redeclaring with the same arguments succeeds only if the queue really is quorum and durable.
    channel.queue_declare(  # type: ignore[attr-defined]
        queue_settings.queue_name,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": queue_settings.delivery_limit,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": f"{queue_settings.queue_name}.XQ",
        },
    )
    publisher.broker.close()


def test_broker_down_leaves_message_to_the_relay(
    engine: Engine, queue_settings: Settings, channel: object
) -> None:
    down = queue_settings.model_copy(update={"amqp_url": "amqp://guest:guest@127.0.0.1:1/%2F"})
    hub_id = stored(engine, granted(uid("V")))
    dead = Publisher(down, engine, make_broker(down))
    assert not dead.try_publish([hub_id])
    assert not published(engine, hub_id)

    live = Publisher(queue_settings, engine, make_broker(queue_settings))
    relay = Relay(queue_settings.model_copy(update={"relay_after_s": 0.01}), live)
    sent = 0
    for _ in range(5):  # other tests' unpublished rows may come first
        sent += relay.relay_once()
        if published(engine, hub_id):
            break
    assert sent >= 1
    assert published(engine, hub_id)
    assert str(hub_id) in drain(channel, queue_settings.queue_name)  # type: ignore[arg-type]
    live.broker.close()


def test_poison_message_past_the_delivery_limit_ends_failed(engine: Engine, settings: Settings) -> None:
    """A message that keeps coming back unacknowledged (as when it crashes every worker) is
    dead-lettered by the quorum queue and recorded as failed, with why, by the relay."""
    poison = settings.model_copy(update={"queue_name": uid("q"), "delivery_limit": 2})
    publisher = Publisher(poison, engine, make_broker(poison))
    hub_id = stored(engine, granted(uid("V")))
    assert publisher.try_publish([hub_id])
    # taken back unacknowledged again and again (as by workers it crashes): each requeue counts
    # as a delivery, and past the limit the quorum queue moves it to the dead letters...
    assert _crash_until_dead(settings, poison.queue_name) == [[str(hub_id)]]
    dead = DeadLetters(poison, engine, publisher.broker)
    assert _drain_until(dead, 1) == 1  # ...and from there the relay records it in the store
    row = status_of(engine, hub_id)
    assert row.status == "failed"
    assert "delivered too often" in row.errors[0]["message"]
    assert dead.drain_once() == 0
    publisher.broker.close()


def _crash_until_dead(
    settings: Settings, queue: str, quiet_s: float = 0.5, timeout_s: float = 30
) -> list[list[str]]:
    """Take the queue's messages back unacknowledged, again and again, as workers that crash on
    them would, until the quorum queue has dead-lettered them all (nothing is ever acked here, so
    an empty queue means dead-lettered; a nack still in flight can hide a message for a moment,
    hence the quiet period and the message count); returns the hub_id lists seen, first take
    of each."""
    conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    ch = conn.channel()
    seen: list[list[str]] = []
    deadline = time.monotonic() + timeout_s
    quiet_since: float | None = None
    while time.monotonic() < deadline:
        method, _, body = ch.basic_get(queue, auto_ack=False)
        if method is not None:
            quiet_since = None
            if (ids := json.loads(body)["args"][0]) not in seen:
                seen.append(ids)
            ch.basic_nack(method.delivery_tag, requeue=True)
            continue
        left = ch.queue_declare(queue, passive=True).method.message_count
        quiet_since = quiet_since or time.monotonic()
        if left == 0 and time.monotonic() - quiet_since >= quiet_s:
            conn.close()
            return seen
        time.sleep(0.05)
    conn.close()
    raise AssertionError(f"{queue} did not dead-letter its messages within {timeout_s} s")


def _drain_until(dead: DeadLetters, expected: int, timeout_s: float = 15) -> int:
    """Dead-lettering is asynchronous: drain until `expected` hub_ids were taken (or time is up),
    then once more to show that nothing else was waiting; returns how many were taken in all."""
    taken = 0
    deadline = time.monotonic() + timeout_s
    while taken < expected and time.monotonic() < deadline:
        taken += dead.drain_once()
        if taken < expected:
            time.sleep(0.05)
    time.sleep(0.2)
    return taken + dead.drain_once()


def test_a_dead_lettered_batch_goes_again_one_by_one_and_only_the_culprit_fails(
    engine: Engine, settings: Settings
) -> None:
    poison = settings.model_copy(update={"queue_name": uid("q"), "delivery_limit": 2})
    publisher = Publisher(poison, engine, make_broker(poison))
    ids = [stored(engine, granted(uid("V"))) for _ in range(3)]
    assert publisher.try_publish(ids)  # one AMQP message with three hub_ids
    assert _crash_until_dead(settings, poison.queue_name) == [[str(h) for h in ids]]
    dead = DeadLetters(poison, engine, publisher.broker)
    assert _drain_until(dead, 3) == 3
    assert {status_of(engine, h).status for h in ids} == {"accepted"}  # none failed for the batch
    # each came back alone; the first keeps crashing the workers, the others are taken (acked)
    conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    ch = conn.channel()
    singles, culprit = [], None
    while (got := ch.basic_get(poison.queue_name, auto_ack=False))[0] is not None:
        singles.append(json.loads(got[2])["args"][0])
        if singles[-1] == [str(ids[0])]:
            culprit = got[0].delivery_tag
        else:
            ch.basic_ack(got[0].delivery_tag)
    assert culprit is not None
    ch.basic_nack(culprit, requeue=True)
    conn.close()
    assert sorted(singles, key=str) == sorted([[str(h)] for h in ids], key=str)
    _crash_until_dead(settings, poison.queue_name)
    assert _drain_until(dead, 1) == 1
    assert status_of(engine, ids[0]).status == "failed"
    assert [status_of(engine, h).status for h in ids[1:]] == ["accepted", "accepted"]
    publisher.broker.close()


def test_published_message_lost_by_the_broker_is_sent_again(
    engine: Engine, queue_settings: Settings, channel: object
) -> None:
    publisher = Publisher(queue_settings, engine, make_broker(queue_settings))
    hub_id = stored(engine, granted(uid("V")))
    assert publisher.try_publish([hub_id])
    drain(channel, queue_settings.queue_name)  # type: ignore[arg-type]  # the broker "loses" it
    with engine.begin() as conn:
        conn.execute(
            update(messages)
            .where(messages.c.hub_id == hub_id)
            .values(updated_at=func.now() - text("interval '1 hour'"))
        )
    relay = Relay(queue_settings.model_copy(update={"stale_after_s": 60}), publisher)
    for _ in range(5):  # other tests' stale rows may come first
        relay.requeue_stale()
        if str(hub_id) in drain(channel, queue_settings.queue_name):  # type: ignore[arg-type]
            break
    else:
        raise AssertionError("the stale message was not sent again")
    with engine.connect() as conn:
        steps = (
            conn.execute(select(journey.c.step).where(journey.c.hub_id == hub_id).order_by(journey.c.id))
            .scalars()
            .all()
        )
    assert steps[-1] == "requeued"
    publisher.broker.close()
