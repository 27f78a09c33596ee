"""The one Dramatiq actor: applies batches of stored messages, retrying what must wait alone.

The process around it (`hub worker`) is wired in `psop_hub.processes`: the broker is set before
the actor is registered, so the actor binds to it."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import dramatiq
from dramatiq.common import compute_backoff
from dramatiq.middleware import CurrentMessage
from sqlalchemy.engine import Engine

from psop_hub.consumers.apply import Applied, apply_batch, record_failure, record_retry
from psop_hub.hub.database import driver_error, is_temporary
from psop_hub.hub.errors import HubError, Unavailable, Waiting
from psop_hub.hub.settings import Settings
from psop_hub.hub.topology import APPLY_ACTOR, apply_request

log = logging.getLogger(__name__)


def reason_of(exc: BaseException) -> str:
    """A reason safe to store and show: a hub error's own words, else only the error's class.

    Driver messages can quote row values (a HETU among them), so they are not copied.
    """
    if isinstance(exc, HubError):
        return str(exc)
    return f"{type(exc).__name__} while applying (see the worker log)"


def register_actor(broker: dramatiq.Broker, settings: Settings, engine: Engine) -> dramatiq.Actor[Any, Any]:
    """Register the one actor that applies stored messages, bound to this broker."""

    def apply_stored(hub_ids: list[str]) -> None:
        current = CurrentMessage.get_current_message()
        options = current.options if current is not None else {}
        retries = int(options.get("retries", 0))
        earlier = [int(n) for n in options.get("attempts", [])]
        if len(earlier) == len(hub_ids):  # released together: each goes on with its own count
            attempt: int | dict[uuid.UUID, int] = {
                uuid.UUID(h): n + 1 for h, n in zip(hub_ids, earlier, strict=True)
            }
        else:
            attempt = retries + 1
        try:
            _apply_and_retry_alone(broker, engine, settings, hub_ids, attempt)
        except Unavailable:
            # The database is away: the batch waits and comes back, without using up the
            # attempts of its messages, however long the outage lasts.
            outages = int(options.get("outages", 0)) + 1
            delay = _backoff(settings, outages - 1)
            log.warning(
                "database unavailable: %d messages wait %d ms (outage try %d)", len(hub_ids), delay, outages
            )
            message = apply_request(
                settings, hub_ids, retries=retries, outages=outages, attempts=earlier or None
            )
            broker.enqueue(message, delay=delay)

    # Dramatiq's own retries are left for when even the broker cannot take the batch back.
    return dramatiq.actor(
        broker=broker,
        actor_name=APPLY_ACTOR,
        queue_name=settings.queue_name,
        max_retries=settings.max_retries + 2,
        min_backoff=settings.min_backoff_ms,
        max_backoff=settings.max_backoff_ms,
    )(apply_stored)


def _apply_and_retry_alone(
    broker: dramatiq.Broker,
    engine: Engine,
    settings: Settings,
    hub_ids: list[str],
    attempt: int | dict[uuid.UUID, int],
) -> None:
    ids = [uuid.UUID(h) for h in hub_ids]
    released = isinstance(attempt, dict)  # waiting messages sent on together (`_release`)
    attempts = attempt if isinstance(attempt, dict) else dict.fromkeys(ids, attempt)
    results = apply_batch(engine, ids, attempts)
    for hub_id, exc in results.items():
        if not isinstance(exc, Exception):
            continue
        if released:
            # Sent on early and still cannot go: nothing is recorded (it was rolled back), and
            # its own retry, still on its way, carries on its count of attempts unchanged.
            continue
        n = attempts.get(hub_id, 1)
        try:
            _give_up_or_retry(engine, settings, str(hub_id), n, exc)
        except GaveUp:
            continue
        # It goes on alone with its attempt count (the rest of a batch is applied), in a new
        # message confirmed before this one is acked: a crash in between only duplicates it,
        # and the inbox makes a duplicate harmless. An expected wait logs no traceback.
        broker.enqueue(apply_request(settings, [str(hub_id)], retries=n), delay=_backoff(settings, n - 1))
    _release(broker, settings, results)


def _release(broker: dramatiq.Broker, settings: Settings, results: Applied) -> None:
    """Send on, at once and together, what waits for the vouchers and orders just applied: the
    batch applies them in the order received (each keeps its own pending retry too, which then
    finds it applied). Enqueued after the commit; if this process dies first, those retries come."""
    if results.waiting:
        # One batch, so that one worker applies them in order (`waiting_for` has them at most 1000).
        broker.enqueue(
            apply_request(
                settings, [str(h) for h, _ in results.waiting], attempts=[n for _, n in results.waiting]
            )
        )
        log.info("%d waiting messages sent on, in the order received", len(results.waiting))


def _backoff(settings: Settings, tries: int) -> int:
    """Milliseconds to wait after `tries` earlier tries: exponential with jitter, bounded."""
    return compute_backoff(tries, factor=settings.min_backoff_ms, max_backoff=settings.max_backoff_ms)[1]


class GaveUp(Exception):
    """The message's last attempt failed; it is recorded as failed (nothing to retry)."""


def _give_up_or_retry(engine: Engine, settings: Settings, hub_id: str, attempt: int, exc: Exception) -> None:
    reason = reason_of(exc)
    if is_temporary(exc):
        # A deadlock, a lock wait past the statement timeout: the database says try again.
        condition = type(driver_error(exc)).__name__
        log.warning("%s applying %s (attempt %d): tried again later", condition, hub_id, attempt)
    elif not isinstance(exc, HubError):
        log.error("unexpected %s applying %s (attempt %d)", type(exc).__name__, hub_id, attempt, exc_info=exc)
    if attempt > settings.max_retries:
        record_failure(engine, uuid.UUID(hub_id), attempt, reason)
        raise GaveUp(reason) from exc
    record_retry(
        engine,
        uuid.UUID(hub_id),
        attempt,
        reason,
        f"retry {attempt} of {settings.max_retries}",
        waiting=isinstance(exc, Waiting),
    )
