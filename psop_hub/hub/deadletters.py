"""Dead letters: what RabbitMQ gave up on becomes a `failed` message in PostgreSQL.

A message that crashes or stalls workers again and again is dead-lettered by the quorum queue
once it reaches `x-delivery-limit`; one whose failure could not be recorded is dead-lettered by
Dramatiq. Both land in the `.XQ` queue, which expires its messages after 7 days: it is not a
record. The relay drains it, records each message as failed (with why), and only then acks. A
dead-lettered *batch* of hub_ids is not failed as a whole: one of them may have crashed the
workers, so each is sent again alone, and only a message dead-lettered on its own ends failed.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.common import xq_name
from sqlalchemy.engine import Engine

from psop_hub.hub import store
from psop_hub.hub.settings import Settings
from psop_hub.hub.topology import apply_request

log = logging.getLogger(__name__)


def _reason(properties: Any) -> str:
    deaths = (getattr(properties, "headers", None) or {}).get("x-death") or [{}]
    why = deaths[0].get("reason", b"")
    why = why.decode() if isinstance(why, bytes) else str(why)
    if why == "delivery_limit":
        return "RabbitMQ dead-lettered it: delivered too often without an ack (workers crashed on it)"
    return f"RabbitMQ dead-lettered it ({why or 'unknown reason'}) after the worker gave up"


def _hub_ids(body: bytes) -> list[uuid.UUID]:
    """The hub_ids a Dramatiq message of ours carries (a list, or a single id)."""
    arg = json.loads(body)["args"][0]
    return [uuid.UUID(h) for h in ([arg] if isinstance(arg, str) else arg)]


class DeadLetters:
    """Drains the dead-letter queue into the store."""

    def __init__(self, settings: Settings, engine: Engine, broker: RabbitmqBroker) -> None:
        self.settings = settings
        self.engine = engine
        self.broker = broker

    def drain_once(self, limit: int = 200) -> int:
        """Record up to `limit` dead letters as failed messages; returns how many hub_ids were taken."""
        self.broker.declare_queue(self.settings.queue_name, ensure=True)
        channel = self.broker.channel
        queue = xq_name(self.settings.queue_name)
        taken = 0
        for _ in range(limit):
            method, properties, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                break
            try:
                hub_ids = _hub_ids(body)
            except (ValueError, KeyError, IndexError, TypeError):
                # Not a hub message: move it to a parking queue that never expires (confirmed
                # before the ack), where an operator can look at it; it must not block the rest.
                parked = f"{queue}.parked"
                channel.queue_declare(parked, durable=True)
                channel.basic_publish("", parked, body, properties, mandatory=True)
                channel.basic_ack(method.delivery_tag)
                log.warning("a message on %s is not a hub message; moved to %s", queue, parked)
                continue
            if len(hub_ids) > 1:
                # One batch-mate may be what crashed the workers: each goes again on its own
                # (confirmed before the ack), so that only the guilty one ends failed.
                for hub_id in hub_ids:
                    self.broker.enqueue(apply_request(self.settings, [str(hub_id)]))
                channel.basic_ack(method.delivery_tag)
                log.warning("a dead-lettered batch of %d messages was sent again one by one", len(hub_ids))
                taken += len(hub_ids)
                continue
            reason = _reason(properties)
            for hub_id in hub_ids:
                store.fail(self.engine, hub_id, None, reason, reason)  # logs the failure
            channel.basic_ack(method.delivery_tag)
            taken += len(hub_ids)
        return taken
