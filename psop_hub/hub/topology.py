"""RabbitMQ topology: the Dramatiq broker the producers and the workers share, and the queue names.

Queue type (see README): the main queue and its delay queue are *quorum* queues by default.
On a single node they cost a little throughput against classic queues, but they are the queue
type RabbitMQ recommends for data safety, they replicate once the broker is clustered, and
their `x-delivery-limit` stops a message that crashes workers from being redelivered forever.
The dead-letter queue `.XQ` stays as Dramatiq declares it: it is not the record of failures,
PostgreSQL is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.middleware import CurrentMessage, Middleware
from dramatiq.middleware.retries import Retries
from dramatiq.middleware.shutdown import ShutdownNotifications
from dramatiq.middleware.time_limit import TimeLimit

from psop_hub.hub.settings import Settings

APPLY_ACTOR = "apply_request"


class HubBroker(RabbitmqBroker):
    """Dramatiq's RabbitMQ broker with the queue type and delivery limit chosen in the settings."""

    def __init__(self, *, queue_type: str, delivery_limit: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.queue_type = queue_type
        self.delivery_limit = delivery_limit

    def _build_queue_arguments(self, queue_name: str) -> dict[str, Any]:
        arguments: dict[str, Any] = super()._build_queue_arguments(queue_name)
        if self.queue_type == "quorum":
            arguments["x-queue-type"] = "quorum"
            arguments["x-delivery-limit"] = self.delivery_limit
        return arguments


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
    urls = [_with_defaults(u) for u in settings.amqp_urls]
    return HubBroker(
        # Several URLs (a cluster's nodes): Dramatiq tries them in turn for each connection.
        url=urls if len(urls) > 1 else urls[0],
        confirm_delivery=True,
        middleware=middleware,
        queue_type=settings.queue_type,
        delivery_limit=settings.delivery_limit,
    )


def _with_defaults(url: str) -> str:
    # A blocked connection (broker out of disk or memory) must fail a publish, not hang it.
    if "blocked_connection_timeout" in url:
        return url
    return url + ("&" if "?" in url else "?") + "heartbeat=30&blocked_connection_timeout=10"


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
