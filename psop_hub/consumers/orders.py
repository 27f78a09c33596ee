"""Purchased-service orders (ostopalvelu): placement and end, with versions like vouchers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from psop_hub.consumers.outcome import Context, Outcome, superseded
from psop_hub.hub.database import raw
from psop_hub.hub.errors import RuleBroken, Waiting
from psop_hub.hub.money import number_text
from psop_hub.hub.tables import column_list, orders
from psop_hub.mappings.payloads import OrderEnded, OrderPlaced

LOCK_ORDER_ROW = (
    f"SELECT {column_list(orders)} FROM orders WHERE organiser = %s AND order_number = %s FOR UPDATE"
)


def require_order(conn: Connection, organiser: str, order_number: str) -> Any:
    """The order row locked until commit; `Waiting` if it has not arrived yet."""
    row = raw(conn).execute(LOCK_ORDER_ROW, (organiser, order_number)).fetchone()
    if row is None:
        raise Waiting(f"order {order_number} of organiser {organiser} has not arrived yet")
    return row


def placed(conn: Connection, ctx: Context, p: OrderPlaced) -> Outcome:
    """order.placed: a new order at the contract price, version 1."""
    inserted = conn.execute(
        pg_insert(orders)
        .values(
            organiser=p.organiser,
            order_number=p.order_number,
            status="placed",
            version=1,
            provider=p.provider,
            client_hetu=p.client.hetu,
            home_municipality=p.client.home_municipality,
            service_code=p.service.code,
            service_name=p.service.name,
            unit=p.unit,
            unit_price=p.unit_price,
            quantity=p.quantity,
            start_date=p.start_date,
            end_date=p.end_date,
        )
        .on_conflict_do_nothing(constraint=orders.primary_key)
        .returning(orders.c.order_number)
    ).scalar_one_or_none()
    if inserted is None:
        raise RuleBroken(
            "order_placed_once",
            f"order {p.order_number} of organiser {p.organiser} was placed already",
            "payload.order_number",
        )
    cap = f" up to {number_text(p.quantity)} {p.unit}" if p.quantity is not None else ""
    return Outcome(
        "applied",
        f"order {p.order_number} placed with {p.provider} at {number_text(p.unit_price)}/{p.unit}{cap}",
    )


def ended(conn: Connection, ctx: Context, p: OrderEnded) -> Outcome:
    """order.ended: no deliveries after `end_date`, if the version is newer."""
    o = require_order(conn, p.organiser, p.order_number)
    old = superseded("order", p.order_number, p.version, o.version)
    if old:
        return old
    if p.end_date < o.start_date:
        raise RuleBroken(
            "order_dates",
            f"end_date {p.end_date} is before the order's start {o.start_date}",
            "payload.end_date",
        )
    conn.execute(
        update(orders)
        .where(orders.c.organiser == p.organiser, orders.c.order_number == p.order_number)
        .values(status="ended", version=p.version, end_date=p.end_date, updated_at=func.now())
    )
    return Outcome("applied", f"order {p.order_number} ends {p.end_date}")
