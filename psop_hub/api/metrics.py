"""Prometheus metrics: intake counters per channel, type and outcome; message counts per status."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest
from sqlalchemy import func, select

from psop_hub.api.deps import services_of
from psop_hub.hub.tables import messages

REGISTRY = CollectorRegistry()
RECEIVED = Counter(
    "hub_messages_received",
    "Messages received by the API, by channel, type and outcome",
    ["channel", "type", "outcome"],
    registry=REGISTRY,
)
BY_STATUS = Gauge("hub_messages", "Messages in the store by status", ["status"], registry=REGISTRY)
router = APIRouter()


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus text format."""
    engine = services_of(request).engine
    with engine.connect() as conn:
        rows = conn.execute(select(messages.c.status, func.count()).group_by(messages.c.status)).all()
    for status, count in rows:
        BY_STATUS.labels(status).set(count)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
