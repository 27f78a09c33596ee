"""Read models: the service state as the REST API shows it. Never includes a client's HETU."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from psop_hub.hub.tables import deliveries, vouchers


def voucher_view(conn: Connection, organiser: str, voucher_number: str) -> dict[str, Any] | None:
    """The voucher as the REST API shows it (never the client's HETU), with its deliveries."""
    v = conn.execute(
        select(vouchers).where(vouchers.c.organiser == organiser, vouchers.c.voucher_number == voucher_number)
    ).one_or_none()
    if v is None:
        return None
    rows = conn.execute(
        select(deliveries)
        .where(deliveries.c.organiser == organiser, deliveries.c.voucher_number == voucher_number)
        .order_by(deliveries.c.service_date, deliveries.c.event_id)
    ).all()
    return {
        "organiser": v.organiser,
        "voucher_number": v.voucher_number,
        "status": v.status,
        "service": {"code": v.service_code, "name": v.service_name},
        "unit": v.unit,
        "unit_value": str(v.unit_value),
        "quantity": str(v.quantity),
        "quantity_used": str(v.quantity_used),
        "quantity_remaining": str(v.quantity - v.quantity_used),
        "valid_from": v.valid_from.isoformat(),
        "valid_to": v.valid_to.isoformat(),
        "provider": v.provider,
        "provider_price": None if v.provider_price is None else str(v.provider_price),
        "version": v.version,
        "deliveries": [
            {
                "event_id": d.event_id,
                "provider": d.provider,
                "service_date": d.service_date.isoformat(),
                "unit": d.unit,
                "quantity": str(d.quantity),
                "price": str(d.price),
                "voucher_share": str(d.voucher_share),
                "client_share": str(d.client_share),
                "status": d.status,
                "version": d.version,
                "hub_id": str(d.hub_id),
            }
            for d in rows
        ],
    }
