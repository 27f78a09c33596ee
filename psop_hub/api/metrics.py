"""Prometheus metrics at `/metrics` (names as docs/alerts.md uses them).

Per API process: `hub_messages_received_total{channel,type,outcome}`, what this process's intake
answered. Read on each scrape (hub/monitoring.py says what each costs with a large store):

- `hub_messages{status}` and `hub_messages_by_type{type,status}`: messages in the store;
- `hub_messages_failed_waiting`: failed messages waiting for an admin (replay);
- `hub_oldest_unapplied_message_age_seconds`: the oldest message accepted or retrying, 0 if none;
- `hub_message_counts_age_seconds`: how old the counts of resolved messages are;
- `hub_settlements_waiting_for_details`: settlements whose invoice waits for invoicing details;
- `hub_replay_jobs{state}`: bulk replay jobs (samples once the replay jobs table exists);
- `hub_queue_messages{queue,role}`, `hub_queue_consumers{queue,role}`: RabbitMQ queues (role
  `main`: the workers' queue, whose consumers are the workers consuming; `delay`; `dead_letter`);
- `hub_client_secret_expires_in_seconds{client}`, `hub_client_secrets_expiring`,
  `hub_client_secrets_expired`: how long the enabled clients' current secrets have left, and how
  many expire within HUB_SECRET_EXPIRY_WARNING (30 days) or have expired;
- `hub_metrics_source_up{source}`: 1 if the `database` / `broker` / `replay_jobs` figures could be
  read now, 0 if not (their series are then left out, never guessed); `/metrics` answers 200
  regardless.

Who may read it: `check_access` (HUB_METRICS_ACCESS, HUB_METRICS_TOKEN; docs/operations.md).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections.abc import Iterable

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy.exc import DBAPIError

from psop_hub.api.deps import Services, services_of
from psop_hub.hub.errors import AuthenticationFailed, HubError, NotAllowed
from psop_hub.hub.monitoring import UNRESOLVED, QueueFigure, StoreFigures, StoreMonitor, read_queues
from psop_hub.hub.senders import SecretFigures, secret_figures
from psop_hub.hub.store import STATUSES

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry()
RECEIVED = Counter(
    "hub_messages_received",
    "Messages received by the API, by channel, type and outcome",
    ["channel", "type", "outcome"],
    registry=REGISTRY,
)
router = APIRouter()
_monitor_lock = threading.Lock()


def _monitor(request: Request, services: Services) -> StoreMonitor:
    """The application's store monitor (it keeps the resolved counts between scrapes)."""
    with _monitor_lock:
        monitor = getattr(request.app.state, "store_monitor", None)
        if not isinstance(monitor, StoreMonitor):
            monitor = StoreMonitor(services.settings, services.engine)
            request.app.state.store_monitor = monitor
        return monitor


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def store_metrics(figures: StoreFigures) -> Iterable[Metric]:
    """The metric families of the store's figures."""
    by_status = GaugeMetricFamily("hub_messages", "Messages in the store by status", labels=["status"])
    # A status with no messages is 0; the resolved ones only once they have been counted at all.
    counted = STATUSES if figures.totals_age_s is not None else UNRESOLVED
    totals = dict.fromkeys(counted, 0)
    for (_, status), n in figures.by_type_status.items():
        totals[status] = totals.get(status, 0) + n
    for status, n in sorted(totals.items()):
        by_status.add_metric([status], n)
    yield by_status
    by_type = GaugeMetricFamily(
        "hub_messages_by_type", "Messages in the store by type and status", labels=["type", "status"]
    )
    for (message_type, status), n in sorted(figures.by_type_status.items()):
        by_type.add_metric([message_type, status], n)
    yield by_type
    yield _gauge(
        "hub_messages_failed_waiting", "Failed messages waiting for a replay", figures.failed_waiting
    )
    yield _gauge(
        "hub_oldest_unapplied_message_age_seconds",
        "Age of the oldest message accepted or retrying (0 if none)",
        figures.oldest_unapplied_age_s,
    )
    if figures.totals_age_s is not None:
        yield _gauge(
            "hub_message_counts_age_seconds",
            "How old the counts of resolved messages are (refreshed less often in a large store)",
            figures.totals_age_s,
        )
    yield _gauge(
        "hub_settlements_waiting_for_details",
        "Settlements whose invoice waits for a party's invoicing details",
        figures.settlements_waiting_for_details,
    )
    # Always declared; its samples (and source `replay_jobs` up) once the jobs' table exists.
    jobs = GaugeMetricFamily("hub_replay_jobs", "Bulk replay jobs by state", labels=["state"])
    for state, n in sorted((figures.replay_jobs or {}).items()):
        jobs.add_metric([state], n)
    yield jobs


def queue_metrics(queues: list[QueueFigure]) -> Iterable[Metric]:
    """The metric families of the broker's queues."""
    depth = GaugeMetricFamily(
        "hub_queue_messages", "Messages ready in a RabbitMQ queue", labels=["queue", "role"]
    )
    consumers = GaugeMetricFamily(
        "hub_queue_consumers", "Consumers of a RabbitMQ queue (role main: workers)", labels=["queue", "role"]
    )
    for q in queues:
        depth.add_metric([q.queue, q.role], q.messages)
        consumers.add_metric([q.queue, q.role], q.consumers)
    yield depth
    yield consumers


def secret_metrics(figures: SecretFigures) -> Iterable[Metric]:
    """The metric families of the client secrets' expiry."""
    left = GaugeMetricFamily(
        "hub_client_secret_expires_in_seconds",
        "Seconds until an enabled client's current secret expires (negative: expired)",
        labels=["client"],
    )
    for client, seconds in sorted(figures.expires_in_s.items()):
        left.add_metric([client], seconds)
    yield left
    yield _gauge(
        "hub_client_secrets_expiring",
        "Enabled clients whose current secret expires within HUB_SECRET_EXPIRY_WARNING",
        figures.expiring,
    )
    yield _gauge(
        "hub_client_secrets_expired", "Enabled clients whose current secret has expired", figures.expired
    )


class _Families:
    """A collector of families read once, for one scrape."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        """The families."""
        return self.families


def scrape(request: Request) -> bytes:
    """Everything `/metrics` exposes, in the Prometheus text format."""
    services = services_of(request)
    families: list[Metric] = []
    up = GaugeMetricFamily(
        "hub_metrics_source_up", "Whether a source's figures could be read for this scrape", labels=["source"]
    )
    try:
        figures = _monitor(request, services).read()
    except (HubError, DBAPIError) as exc:
        log.warning("metrics: the store's figures could not be read: %s", exc)
        up.add_metric(["database"], 0)
        up.add_metric(["replay_jobs"], 0)
    else:
        families += store_metrics(figures)
        up.add_metric(["database"], 1)
        up.add_metric(["replay_jobs"], 0 if figures.replay_jobs is None else 1)
    try:
        families += secret_metrics(secret_figures(services.engine, services.settings.secret_expiry_warning))
    except (HubError, DBAPIError) as exc:
        log.warning("metrics: the client secrets' expiry could not be read: %s", exc)
    queues = read_queues(services.settings)
    if queues is not None:
        families += queue_metrics(queues)
    up.add_metric(["broker"], 0 if queues is None else 1)
    families.append(up)
    registry = CollectorRegistry()
    registry.register(_Families(families))
    return generate_latest(REGISTRY) + generate_latest(registry)


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def check_access(request: Request, services: Services) -> None:
    """`/metrics` names clients and counts messages by type: with HUB_METRICS_ACCESS=token (the
    default) only `Authorization: Bearer` with HUB_METRICS_TOKEN or an admin client's secret reads
    it (401 without either, 403 for a system's or a provider's secret); with `open`, anyone."""
    settings = services.settings
    if settings.metrics_access == "open":
        return
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    presented = presented.strip()
    if scheme.lower() != "bearer" or not presented:
        raise AuthenticationFailed("send Authorization: Bearer with the metrics token or an admin's secret")
    token = settings.metrics_token
    # Digests of equal length compared in constant time: neither the token nor its length leaks.
    if token is not None and hmac.compare_digest(_digest(token), _digest(presented)):
        return
    sender = services.authenticator.by_secret(presented)
    if not sender.is_admin:
        raise NotAllowed("only the metrics token and admin clients may read /metrics")


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus text format (see `check_access` for who may read it)."""
    services = services_of(request)
    check_access(request, services)
    return Response(scrape(request), media_type=CONTENT_TYPE_LATEST)
