"""Liveness and readiness: ready only when PostgreSQL and RabbitMQ both answer."""

from __future__ import annotations

import pika
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pika.exceptions import AMQPError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from psop_hub.api.deps import services_of

router = APIRouter(tags=["health"])


@router.get("/health/live")
def live() -> dict[str, str]:
    """The process answers."""
    return {"status": "up"}


@router.get("/health/ready")
def ready(request: Request) -> JSONResponse:
    """200 when the database and the broker are reachable, else 503 naming which is not."""
    services = services_of(request)
    checks: dict[str, str] = {}
    try:
        with services.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "up"
    except DBAPIError:
        checks["database"] = "down"
    checks["broker"] = "down"
    for url in services.settings.amqp_urls:  # up when any node of the cluster answers
        try:
            params = pika.URLParameters(url)
            params.socket_timeout = 3
            params.blocked_connection_timeout = 3
            pika.BlockingConnection(params).close()
        except (AMQPError, OSError):
            continue
        checks["broker"] = "up"
        break
    ok = all(v == "up" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503
    )
