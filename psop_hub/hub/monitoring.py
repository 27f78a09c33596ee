"""Figures for `/metrics`: the message store, the broker's queues and the replay jobs.

Cheap with a large store: what an alert needs is read on every scrape through indexes whose cost
follows the backlog, not the store (`ix_messages_status_received`):

- the unresolved messages (`accepted`, `retrying`, `failed`) by type and status, the failed ones
  waiting for an admin, and the age of the oldest message not applied yet (`accepted` or
  `retrying`: in flight; `failed` is counted apart and alerted on apart);
- the resolved ones (`applied`, `rejected`, `superseded`, `replaced`) need a count over the whole
  table (measured: ~1.2 s for 1,000,000 messages on two cores). While the planner estimates at
  most `HUB_METRICS_EXACT_ROWS` messages they are counted on every scrape; above that, at most
  every `HUB_METRICS_TOTALS_TTL_S` per process, and `totals_age_s` says how old they are.

The queues are read over AMQP with passive `queue_declare` (messages ready, consumers), which
RabbitMQ 3.x answers without the management plugin (not enabled in the Debian images here): one
short-lived connection per scrape with `HUB_METRICS_TIMEOUT_S` on the socket and every stage, so a
broker that is down costs a scrape at most that long, and is reported as not read, never raised.

Replay jobs (`replay_jobs`, migration 0007 of the replay work): counted by state when the table
exists; until then `replay_jobs` is None and no series is exported. `replay_job_counts` is the
one place that knows its shape.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import pika
from dramatiq.common import dq_name, xq_name
from pika.exceptions import AMQPError, ChannelClosedByBroker
from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from psop_hub.hub.database import is_unavailable, unavailable_on_outage
from psop_hub.hub.errors import HubError
from psop_hub.hub.settings import Settings
from psop_hub.hub.settlement_views import settlements_waiting_for_details
from psop_hub.hub.tables import messages

log = logging.getLogger(__name__)

UNRESOLVED = ("accepted", "retrying", "failed")
IN_FLIGHT = ("accepted", "retrying")
# The replay jobs' table and the column that holds a job's state (the replay work's migration 0007).
REPLAY_JOBS_TABLE = "replay_jobs"
REPLAY_JOBS_STATE_COLUMNS = ("state", "status")


@dataclass(frozen=True)
class StoreFigures:
    """What the database tells: message counts, the backlog's age, replay jobs, waiting invoices."""

    by_type_status: dict[tuple[str, str], int]
    failed_waiting: int
    oldest_unapplied_age_s: float
    totals_age_s: float | None  # how old the resolved counts are; None: not read yet
    replay_jobs: dict[str, int] | None  # None: no replay jobs table (yet)
    settlements_waiting_for_details: int


@dataclass(frozen=True)
class QueueFigure:
    """One RabbitMQ queue: messages ready for a consumer, and consumers attached."""

    queue: str
    role: str  # main, delay (retries waiting for their backoff), dead_letter
    messages: int
    consumers: int


def _timeout(conn: Connection, seconds: float) -> None:
    conn.execute(
        text("SELECT set_config('statement_timeout', :ms, true)"), {"ms": str(max(1, int(seconds * 1000)))}
    )


def replay_job_counts(conn: Connection) -> dict[str, int] | None:
    """Replay jobs by state, or None while the replay jobs table does not exist."""
    found = conn.execute(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": REPLAY_JOBS_TABLE}).scalar_one()
    if not found:
        return None
    columns = set(
        conn.execute(
            text(
                "SELECT attname FROM pg_attribute "
                "WHERE attrelid = to_regclass(:t) AND attnum > 0 AND NOT attisdropped"
            ),
            {"t": REPLAY_JOBS_TABLE},
        ).scalars()
    )
    column = next((c for c in REPLAY_JOBS_STATE_COLUMNS if c in columns), None)
    if column is None:
        log.warning("table %s has no state column (%s): not counted", REPLAY_JOBS_TABLE, columns)
        return None
    # Both names are constants of this module, never input.
    rows = conn.execute(text(f"SELECT {column}, count(*) FROM {REPLAY_JOBS_TABLE} GROUP BY {column}"))
    return {str(state): int(n) for state, n in rows}


@dataclass
class StoreMonitor:
    """Reads `StoreFigures`, keeping the expensive resolved counts between scrapes of a large store."""

    settings: Settings
    engine: Engine
    _totals: dict[tuple[str, str], int] = field(default_factory=dict)
    _totals_at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def read(self) -> StoreFigures:
        """The figures now; `Unavailable` (or a driver error) if the database cannot be read."""
        timeout = self.settings.metrics_timeout_s
        with unavailable_on_outage(), self.engine.begin() as conn:
            _timeout(conn, timeout)
            unresolved = conn.execute(
                select(messages.c.type, messages.c.status, func.count())
                .where(messages.c.status.in_(UNRESOLVED))
                .group_by(messages.c.type, messages.c.status)
            ).all()
            oldest = conn.execute(
                select(func.extract("epoch", func.now() - func.min(messages.c.received_at))).where(
                    messages.c.status.in_(IN_FLIGHT)
                )
            ).scalar()
            estimate = conn.execute(
                text("SELECT reltuples FROM pg_class WHERE oid = 'messages'::regclass")
            ).scalar_one()
            try:
                with conn.begin_nested():
                    replay_jobs = replay_job_counts(conn)
            except DBAPIError as exc:
                if is_unavailable(exc):
                    raise
                # A table of another shape than expected must not cost the other figures.
                log.warning("replay jobs not counted: %s", exc)
                replay_jobs = None
        totals, totals_age = self._resolved_totals(float(estimate))
        counts = {(t, s): int(n) for t, s, n in unresolved}
        counts.update(totals)
        waiting = len(settlements_waiting_for_details(self.engine))
        return StoreFigures(
            by_type_status=counts,
            failed_waiting=sum(n for (_, s), n in counts.items() if s == "failed"),
            oldest_unapplied_age_s=max(0.0, float(oldest or 0)),
            totals_age_s=totals_age,
            replay_jobs=replay_jobs,
            settlements_waiting_for_details=waiting,
        )

    def _resolved_totals(self, estimated_rows: float) -> tuple[dict[tuple[str, str], int], float | None]:
        now = time.monotonic()
        with self._lock:
            fresh_enough = (
                self._totals_at is not None
                and estimated_rows > self.settings.metrics_exact_rows
                and now - self._totals_at < self.settings.metrics_totals_ttl_s
            )
            if not fresh_enough:
                try:
                    self._totals = self._count_resolved()
                    self._totals_at = now
                except (HubError, DBAPIError) as exc:
                    # Kept from the last count (its age says so); the next scrape tries again.
                    log.warning("resolved message counts not refreshed: %s", exc)
            age = None if self._totals_at is None else now - self._totals_at
            return dict(self._totals), age

    def _count_resolved(self) -> dict[tuple[str, str], int]:
        with unavailable_on_outage(), self.engine.begin() as conn:
            _timeout(conn, self.settings.statement_timeout_ms / 1000)
            rows = conn.execute(
                select(messages.c.type, messages.c.status, func.count())
                .where(messages.c.status.not_in(UNRESOLVED))
                .group_by(messages.c.type, messages.c.status)
            ).all()
        return {(t, s): int(n) for t, s, n in rows}


def queue_names(settings: Settings) -> list[tuple[str, str]]:
    """The hub's queues and their roles: the workers' queue, its delay queue, its dead letters."""
    name = settings.queue_name
    return [(name, "main"), (dq_name(name), "delay"), (xq_name(name), "dead_letter")]


def read_queues(settings: Settings) -> list[QueueFigure] | None:
    """Every hub queue's depth and consumers, from the first broker node that answers; None if
    none does within `HUB_METRICS_TIMEOUT_S`. A queue not declared yet has neither."""
    timeout = settings.metrics_timeout_s
    for url in settings.amqp_urls:
        params = pika.URLParameters(url)
        params.socket_timeout = timeout
        params.stack_timeout = timeout
        params.blocked_connection_timeout = timeout
        params.connection_attempts = 1
        try:
            connection = pika.BlockingConnection(params)
        except (AMQPError, OSError) as exc:
            log.warning("queue figures not read from a broker node: %s", exc)
            continue
        try:
            return [_queue(connection, queue, role) for queue, role in queue_names(settings)]
        except (AMQPError, OSError) as exc:
            log.warning("queue figures not read: %s", exc)
            return None
        finally:
            try:
                connection.close()
            except (AMQPError, OSError):
                pass  # the figures are read; a connection already gone needs no closing
    return None


def _queue(connection: pika.BlockingConnection, queue: str, role: str) -> QueueFigure:
    channel = connection.channel()
    try:
        declared = channel.queue_declare(queue, passive=True)
    except ChannelClosedByBroker as exc:
        if exc.reply_code != 404:
            raise
        return QueueFigure(queue, role, 0, 0)  # not declared: no worker has ever consumed it
    channel.close()
    return QueueFigure(queue, role, declared.method.message_count, declared.method.consumer_count)
