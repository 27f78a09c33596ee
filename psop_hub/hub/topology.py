"""RabbitMQ topology: the Dramatiq broker the producers and the workers share, and the queue names.

Queue type (see README): the main queue and its delay queue are *quorum* queues by default.
On a single node they cost a little throughput against classic queues, but they are the queue
type RabbitMQ recommends for data safety, they replicate once the broker is clustered, and
their `x-delivery-limit` stops a message that crashes workers from being redelivered forever.
The dead-letter queue `.XQ` stays as Dramatiq declares it: it is not the record of failures,
PostgreSQL is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import dramatiq
import pika
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.middleware import CurrentMessage, Middleware
from dramatiq.middleware.retries import Retries
from dramatiq.middleware.shutdown import ShutdownNotifications
from dramatiq.middleware.time_limit import TimeLimit

from psop_hub.hub.logs import quiet_pika
from psop_hub.hub.settings import Settings

log = logging.getLogger(__name__)
APPLY_ACTOR = "apply_request"


class HubBroker(RabbitmqBroker):
    """Dramatiq's RabbitMQ broker with the queue type and delivery limit chosen in the settings,
    and connections that do not die of idleness.

    pika sends heartbeats only while its connection's thread is inside pika; a producer thread
    (a publisher between requests, a worker thread between retries) leaves its connection alone
    for minutes, RabbitMQ closes it for missed heartbeats, and the next use met a dead socket
    (pika logged each as an ERROR with a stack). So a thread's connection unused for longer than
    `idle_limit_s` (half the heartbeat timeout, well before either side gives up on it) is closed
    and a fresh one opened, quietly, at its next use. Closing a broken connection (after an
    outage, or at shutdown) is quiet too: the hub reconnects and says so in its own words.
    """

    def __init__(
        self, *, queue_type: str, delivery_limit: int, idle_limit_s: float | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.queue_type = queue_type
        self.delivery_limit = delivery_limit
        self.idle_limit_s = idle_limit_s

    def _build_queue_arguments(self, queue_name: str) -> dict[str, Any]:
        arguments: dict[str, Any] = super()._build_queue_arguments(queue_name)
        if self.queue_type == "quorum":
            arguments["x-queue-type"] = "quorum"
            arguments["x-delivery-limit"] = self.delivery_limit
        return arguments

    def _channel(self) -> Any:
        """This thread's channel (Dramatiq's), after replacing a connection idle for too long."""
        now = time.monotonic()
        used_at = getattr(self.state, "used_at", None)
        if (
            self.idle_limit_s is not None
            and used_at is not None
            and now - used_at > self.idle_limit_s
            and getattr(self.state, "connection", None) is not None
        ):
            log.debug("AMQP connection unused for %.0f s: opening a fresh one", now - used_at)
            self._forget_connection()
        self.state.used_at = now
        return super().channel

    def _forget_channel(self) -> None:
        channel = self.state.__dict__.pop("channel", None)
        if channel is not None:
            self.channels.discard(channel)
            _close_quietly(channel)

    def _forget_connection(self) -> None:
        """Drop this thread's connection and channel; the next use opens new ones."""
        self._forget_channel()
        connection = self.state.__dict__.pop("connection", None)
        if connection is not None:
            self.connections.discard(connection)
            _close_quietly(connection)

    def _connection(self) -> Any:
        return super().connection

    # Dramatiq's properties, with these getters and quiet deleters (`del broker.connection`).
    channel = property(_channel, None, _forget_channel)
    connection = property(_connection, None, _forget_connection)

    def close(self) -> None:
        """Close every connection of this broker; one that RabbitMQ closed already is let go quietly."""
        with quiet_pika():
            for item in [*self.channels, *self.connections]:
                _close_quietly(item)
            self.channels.clear()
            self.connections.clear()
        # This thread's next use opens a new connection (other threads' closed ones are replaced
        # by Dramatiq's retry of the failed publish, as after any lost connection).
        self.state.__dict__.pop("channel", None)
        self.state.__dict__.pop("connection", None)


def _close_quietly(item: Any) -> None:
    # A connection that died while idle fails to close; nothing is lost (unconfirmed publishes
    # were never reported as done), so this is not worth more than a debug line.
    with quiet_pika():
        try:
            if item.is_open:
                item.close()
        except Exception as exc:
            log.debug("closing a broken AMQP %s: %s", type(item).__name__, exc)


def make_broker(settings: Settings) -> HubBroker:
    """A broker with publisher confirms (and so the mandatory flag) on; it connects lazily."""
    # Callbacks, pipelines and age limits are not used; each middleware costs CPU per message.
    middleware: list[Middleware] = [
        TimeLimit(time_limit=120_000),
        ShutdownNotifications(),
        Retries(
            max_retries=settings.max_retries,
            min_backoff=settings.min_backoff_ms,
            max_backoff=settings.max_backoff_ms,
        ),
        CurrentMessage(),
    ]
    urls = [with_defaults(u, settings.amqp_heartbeat_s) for u in settings.amqp_urls]
    heartbeats = [pika.URLParameters(u).heartbeat for u in urls]
    shortest = min((h for h in heartbeats if isinstance(h, int) and h > 0), default=None)
    return HubBroker(
        # Several URLs (a cluster's nodes): Dramatiq tries them in turn for each connection.
        url=urls if len(urls) > 1 else urls[0],
        confirm_delivery=True,
        middleware=middleware,
        queue_type=settings.queue_type,
        delivery_limit=settings.delivery_limit,
        idle_limit_s=None if shortest is None else shortest / 2,
    )


def with_defaults(url: str, heartbeat_s: int) -> str:
    """The URL with the hub's connection defaults for what it does not set itself: the heartbeat
    timeout, and a blocked connection (broker out of disk or memory) failing a publish in 10 s
    rather than hanging it."""
    query = parse_qs(urlsplit(url).query)
    extra = [
        f"{name}={value}"
        for name, value in (("heartbeat", heartbeat_s), ("blocked_connection_timeout", 10))
        if name not in query
    ]
    if not extra:
        return url
    return url + ("&" if "?" in url else "?") + "&".join(extra)


def apply_request(
    settings: Settings,
    hub_ids: Sequence[str],
    retries: int = 0,
    outages: int = 0,
    attempts: Sequence[int] | None = None,
) -> dramatiq.Message[Any]:
    """The Dramatiq message that asks a worker to apply stored messages (enqueued by actor name).

    One AMQP message carries a batch of hub_ids: publishing, consuming and acking cost the same
    CPU for one id as for twenty, and that CPU bounds the throughput of a small machine.
    `retries` continues the attempt count of a message retried on its own; `outages` counts how
    often the batch came back because the database was away (it sets only the wait). `attempts`
    gives each message's own count instead (waiting messages released together, in order).
    """
    return dramatiq.Message(
        queue_name=settings.queue_name,
        actor_name=APPLY_ACTOR,
        args=(list(hub_ids),),
        kwargs={},
        options={
            k: v
            for k, v in (("retries", retries), ("outages", outages), ("attempts", list(attempts or ())))
            if v
        },
    )
