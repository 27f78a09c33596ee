"""Publishing stored messages to RabbitMQ, and the relay that resends what was never confirmed.

A message is committed to PostgreSQL before the sender hears `202`; only then is its hub_id
published, with publisher confirms and the mandatory flag, and its `outbox` row (written with the
message) is deleted. If the broker is down at that moment the row stays and the relay (in every
API process; `SKIP LOCKED` keeps them apart) sends it later. A message published twice is
harmless: the consumers' inbox decides.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Protocol

from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.errors import DramatiqError
from pika.exceptions import AMQPError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from psop_hub.hub import store
from psop_hub.hub.database import unavailable_on_outage
from psop_hub.hub.deadletters import DeadLetters
from psop_hub.hub.errors import Unavailable
from psop_hub.hub.logs import quiet_pika
from psop_hub.hub.settings import Settings
from psop_hub.hub.topology import apply_request

log = logging.getLogger(__name__)
# After a failed publish the dispatcher tries again this much later (what arrives meanwhile is left
# to the relay), not at every message: one attempt, and one WARNING, per thread per second.
BROKER_AWAY_S = 1.0


def drop_connection(broker: RabbitmqBroker) -> None:
    """Drop this thread's AMQP connection: a channel broken mid-call must not be reused."""
    try:
        del broker.connection
    except Exception:
        log.debug("closing a broken AMQP connection failed", exc_info=True)


class Publisher:
    """Sends stored messages' ids to the workers' queue and records the broker's confirm."""

    def __init__(self, settings: Settings, engine: Engine, broker: RabbitmqBroker) -> None:
        self.settings = settings
        self.engine = engine
        self.broker = broker

    def send(self, hub_ids: Sequence[uuid.UUID]) -> None:
        """Publish the ids in batches, each confirmed by RabbitMQ; `Unavailable` if the broker is down."""
        ids = [str(h) for h in hub_ids]
        size = self.settings.publish_batch
        try:
            # pika logs each failed connection attempt in several lines; the caller reports the
            # outcome in one (a broker away for seconds made ~1,000 lines a second of them).
            with quiet_pika():
                for start in range(0, len(ids), size):
                    self.broker.enqueue(apply_request(self.settings, ids[start : start + size]))
        except (DramatiqError, AMQPError, OSError) as exc:
            raise Unavailable("the message broker is not reachable") from exc

    def publish(self, hub_ids: Sequence[uuid.UUID]) -> None:
        """Publish freshly stored messages and mark them published."""
        self.send(hub_ids)
        with unavailable_on_outage(), self.engine.begin() as conn:
            store.mark_published(conn, hub_ids)

    def try_publish(self, hub_ids: Sequence[uuid.UUID]) -> bool:
        """Publish now if possible; on failure leave the messages to the relay (they are stored)."""
        try:
            self.publish(hub_ids)
        except (Unavailable, DBAPIError) as exc:
            log.warning("publish deferred to the relay: %s (%d messages)", exc, len(hub_ids))
            return False
        return True


class Dispatcher:
    """Publishes freshly stored messages from a queue in this process, in batches.

    The request thread only hands over the hub_id. Several threads publish (each with its own
    channel): a publish waits for its own confirm, and a quorum queue confirms only after its
    log is on disk, so one thread alone would be bounded by that latency. Each thread marks a
    whole batch published in one statement. A hub_id lost with the process is still in
    PostgreSQL unpublished, and the relay sends it.
    """

    def __init__(self, publisher: Publisher, threads: int = 2, batch: int = 200, linger_ms: int = 5) -> None:
        self.publisher = publisher
        self.threads = threads
        self.batch = batch
        self.linger_s = linger_ms / 1000
        self._queue: queue.SimpleQueue[list[uuid.UUID] | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._away_until = 0.0  # until then no publish is tried: the broker was just unreachable

    def submit(self, hub_ids: list[uuid.UUID]) -> None:
        """Hand stored messages over for publishing (never blocks): the intake hands over each
        committed group's at once."""
        if hub_ids:
            self._queue.put(hub_ids)

    def run(self) -> None:
        """Publish until an end marker arrives."""
        while True:
            first = self._queue.get()
            if first is None:
                return
            ids = list(first)
            # Linger a few ms for company: one AMQP message for many ids costs the broker, this
            # process and the worker much less CPU than one each.
            until = time.monotonic() + self.linger_s
            while len(ids) < self.batch:
                try:
                    more = self._queue.get(timeout=max(0.0, until - time.monotonic()))
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # leave the marker for this thread's next turn
                    break
                ids.extend(more)
            if time.monotonic() < self._away_until:
                continue  # the broker was unreachable a moment ago: these are stored, the relay sends them
            try:
                if not self.publisher.try_publish(ids):
                    self._away_until = time.monotonic() + BROKER_AWAY_S
            except Exception:
                # These threads must outlive any error; the ids are still in the outbox.
                log.exception("publishing %d messages failed; the relay will send them", len(ids))
                drop_connection(self.publisher.broker)

    def start(self) -> None:
        """Start the publishing threads."""
        for n in range(self.threads):
            thread = threading.Thread(target=self.run, name=f"hub-dispatcher-{n}", daemon=True)
            thread.start()
            self._workers.append(thread)

    def stop(self) -> None:
        """Publish what was handed over, then stop every thread."""
        for _ in self._workers:
            self._queue.put(None)
        for thread in self._workers:
            thread.join(timeout=30)


class Round(Protocol):
    """Further work the relay thread does each round (bulk replay jobs: `hub.replayjobs`)."""

    def run_once(self) -> int:
        """Do a bounded amount of work; returns how much was done."""
        ...


class Relay:
    """Resends stored messages that RabbitMQ never confirmed, records dead letters as failed and
    works bulk replay jobs; runs as a daemon thread."""

    def __init__(
        self,
        settings: Settings,
        publisher: Publisher,
        dead_letters: DeadLetters | None = None,
        batch: int = 200,
        jobs: Round | None = None,
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.dead_letters = dead_letters
        self.jobs = jobs
        self.batch = batch
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def relay_once(self) -> int:
        """Send one batch of unconfirmed messages; returns how many were sent."""
        with unavailable_on_outage(), self.publisher.engine.begin() as conn:
            hub_ids = store.lock_unpublished(conn, self.settings.relay_after_s, self.batch)
            if hub_ids:
                # Rows stay locked until the confirms are in, so two relays never send one row.
                self.publisher.send(hub_ids)
                store.mark_published(conn, hub_ids, detail="published by the relay")
        return len(hub_ids)

    def requeue_stale(self) -> int:
        """Send again what was published but is still not final long after any retry was due."""
        after = self.settings.stale_after_s
        with unavailable_on_outage(), self.publisher.engine.begin() as conn:
            hub_ids = store.lock_stale(conn, after, self.batch)
            if hub_ids:
                self.publisher.send(hub_ids)
                store.mark_requeued(conn, hub_ids, f"not applied {after:g} s after its last step: sent again")
                log.warning("sent %d stale messages again", len(hub_ids))
        return len(hub_ids)

    def run(self) -> None:
        """Loop until stopped: drain what is due, then sleep for the interval."""
        while not self._stop.is_set():
            busy = False
            try:
                while self.relay_once() == self.batch and not self._stop.is_set():
                    pass
                self.requeue_stale()
                if self.dead_letters is not None:
                    self.dead_letters.drain_once()
                # A replay job in hand goes on in the next round at once, without the pause.
                busy = self.jobs is not None and self.jobs.run_once() > 0
            except (Unavailable, DBAPIError, DramatiqError, AMQPError) as exc:
                log.warning("relay waiting: %s", exc)
                drop_connection(self.publisher.broker)
            except Exception:
                # This thread is what resends unconfirmed messages: it must outlive any error.
                # Nothing is lost meanwhile (the outbox rows and dead letters stay where they are).
                log.exception("relay round failed; trying again in %.1fs", self.settings.relay_interval_s)
                drop_connection(self.publisher.broker)
            if not busy:
                self._stop.wait(self.settings.relay_interval_s)

    def start(self) -> None:
        """Start the relay thread."""
        self._thread = threading.Thread(target=self.run, name="hub-relay", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the relay to stop and wait for its current batch."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
