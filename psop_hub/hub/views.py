"""Read models: the service state as the REST API shows it. Never includes a client's HETU."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from psop_hub.hub.money import optional_money_text
from psop_hub.hub.tables import deliveries, orders, provider_approvals, vouchers, without_hetu


def _day(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _deliveries(conn: Connection, organiser: str, column: str, number: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(deliveries)
        .where(deliveries.c.organiser == organiser, deliveries.c[column] == number)
        .order_by(deliveries.c.service_date, deliveries.c.event_id)
    ).all()
    # What the organiser pays is `organiser_share` for a voucher's and an order's deliveries alike;
    # a voucher's keep the name `voucher_share` for it too (the voucher's part of the price). The
    # column keeps its first name, so that a rolling upgrade's older workers still write it.
    voucher = column == "voucher_number"
    return [
        {
            "event_id": d.event_id,
            "provider": d.provider,
            "service_date": d.service_date.isoformat(),
            "unit": d.unit,
            "quantity": str(d.quantity),
            "price": str(d.price),
            "unit_paid": str(d.unit_paid),
            "organiser_share": str(d.voucher_share),
            **({"voucher_share": str(d.voucher_share)} if voucher else {}),
            "client_share": str(d.client_share),
            "status": d.status,
            "version": d.version,
            "hub_id": str(d.hub_id),
        }
        for d in rows
    ]


def _quantities(quantity: Decimal | None, used: Decimal) -> dict[str, str | None]:
    if quantity is None:
        return {
            "quantity": None,
            "quantity_used": str(used),
            "quantity_remaining": None,
            "quantity_over": "0",
        }
    return {
        "quantity": str(quantity),
        "quantity_used": str(used),
        "quantity_remaining": str(max(quantity - used, Decimal("0.00"))),
        # above zero only when an amendment lowered the quantity below what was already delivered
        "quantity_over": str(max(used - quantity, Decimal("0.00"))),
    }


def voucher_view(conn: Connection, organiser: str, voucher_number: str) -> dict[str, Any] | None:
    """The voucher as the REST API shows it, with its deliveries."""
    v = conn.execute(
        select(*without_hetu(vouchers)).where(
            vouchers.c.organiser == organiser, vouchers.c.voucher_number == voucher_number
        )
    ).one_or_none()
    if v is None:
        return None
    return {
        "organiser": v.organiser,
        "voucher_number": v.voucher_number,
        "status": v.status,
        "decision_date": v.decision_date.isoformat(),
        "service": {"code": v.service_code, "name": v.service_name},
        "home_municipality": v.home_municipality,
        "unit": v.unit,
        "unit_value": str(v.unit_value),
        **_quantities(v.quantity, v.quantity_used),
        "valid_from": v.valid_from.isoformat(),
        "valid_to": v.valid_to.isoformat(),
        "provider": v.provider,
        "provider_price": optional_money_text(v.provider_price),
        "assigned_from": _day(v.assigned_from),
        "revoked_from": _day(v.effective_end),
        "revoked_reason": v.revoked_reason,
        "version": v.version,
        "deliveries": _deliveries(conn, organiser, "voucher_number", voucher_number),
    }


def order_view(conn: Connection, organiser: str, order_number: str) -> dict[str, Any] | None:
    """The order as the REST API shows it, with its deliveries."""
    o = conn.execute(
        select(*without_hetu(orders)).where(
            orders.c.organiser == organiser, orders.c.order_number == order_number
        )
    ).one_or_none()
    if o is None:
        return None
    return {
        "organiser": o.organiser,
        "order_number": o.order_number,
        "status": o.status,
        "provider": o.provider,
        "service": {"code": o.service_code, "name": o.service_name},
        "home_municipality": o.home_municipality,
        "unit": o.unit,
        "unit_price": str(o.unit_price),
        **_quantities(o.quantity, o.quantity_used),
        "start_date": o.start_date.isoformat(),
        "end_date": _day(o.end_date),
        "version": o.version,
        "deliveries": _deliveries(conn, organiser, "order_number", order_number),
    }


def approval_view(conn: Connection, organiser: str, provider: str) -> dict[str, Any] | None:
    """The organiser's approval of the provider as the REST API shows it (service_codes None: all)."""
    a = conn.execute(
        select(provider_approvals).where(
            provider_approvals.c.organiser == organiser, provider_approvals.c.provider == provider
        )
    ).one_or_none()
    if a is None:
        return None
    return {
        "organiser": a.organiser,
        "provider": a.provider,
        "version": a.version,
        "service_codes": None if a.service_codes is None else list(a.service_codes),
        "valid_from": a.valid_from.isoformat(),
        "valid_to": _day(a.valid_to),
    }
