"""Helpers for settlement and payment tests: unique valid business IDs and delivery rows written
directly (not through the consumers), so a test sees only its own organiser/provider pairs."""

from __future__ import annotations

import random
import uuid
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from stdnum.fi import ytunnus

from psop_hub.hub.tables import deliveries, settlement_items, settlement_rows, settlements
from tests.messages import uid

HOME_CARE = ("KH01", "Säännöllinen kotihoito")
PHYSIO = ("FYS01", "Fysioterapia")
_issued: set[str] = set()


def business_id() -> str:
    """A valid Y-tunnus never handed out before in this run (a random base, its check digit)."""
    while True:
        base = f"{random.randrange(10**6, 10**7):07d}"
        # A base whose mod-11 remainder is 1 has no valid check digit; those are skipped.
        valid = [f"{base}-{d}" for d in range(10) if ytunnus.is_valid(f"{base}-{d}")]
        if valid and valid[0] not in _issued:
            _issued.add(valid[0])
            return valid[0]


def cents(value: Decimal) -> Decimal:
    """Money to the cent, halves away from zero, as the consumers round voucher shares."""
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def add_delivery(
    engine: Engine,
    organiser: str,
    provider: str,
    service_date: date,
    quantity: str,
    unit_paid: str,
    service: tuple[str | None, str | None] = HOME_CARE,
    unit: str = "hour",
    status: str = "reported",
) -> str:
    """Insert a delivery against a voucher as the consumers would leave it; returns its event_id."""
    event_id = uid("ev")
    q, paid = Decimal(quantity), Decimal(unit_paid)
    price = paid + Decimal("5.00")
    share = Decimal("0.00") if status == "cancelled" else cents(paid * q)
    with engine.begin() as conn:
        conn.execute(
            deliveries.insert().values(
                provider=provider,
                event_id=event_id,
                organiser=organiser,
                voucher_number=uid("V"),
                service_date=service_date,
                unit=unit,
                quantity=q,
                price=price,
                unit_paid=paid,
                voucher_share=share,
                client_share=cents(price * q) - share,
                status=status,
                version=1,
                hub_id=uuid.uuid4(),
                service_code=service[0],
                service_name=service[1],
            )
        )
    return event_id


def correct(engine: Engine, provider: str, event_id: str, quantity: str) -> None:
    """Apply a delivery.corrected as the consumers would: new quantity and voucher share."""
    with engine.begin() as conn:
        d = conn.execute(
            select(deliveries).where(deliveries.c.provider == provider, deliveries.c.event_id == event_id)
        ).one()
        q = Decimal(quantity)
        share = cents(d.unit_paid * q)
        conn.execute(
            update(deliveries)
            .where(deliveries.c.provider == provider, deliveries.c.event_id == event_id)
            .values(
                quantity=q,
                voucher_share=share,
                client_share=cents(d.price * q) - share,
                status="corrected",
                version=d.version + 1,
            )
        )


def cancel(engine: Engine, provider: str, event_id: str) -> None:
    """Apply a delivery.cancelled as the consumers would: quantity kept, nothing payable."""
    with engine.begin() as conn:
        conn.execute(
            update(deliveries)
            .where(deliveries.c.provider == provider, deliveries.c.event_id == event_id)
            .values(
                status="cancelled",
                voucher_share=Decimal("0.00"),
                client_share=Decimal("0.00"),
                version=deliveries.c.version + 1,
            )
        )


def delivery_row(engine: Engine, provider: str, event_id: str) -> Any:
    """The delivery row."""
    with engine.connect() as conn:
        return conn.execute(
            select(deliveries).where(deliveries.c.provider == provider, deliveries.c.event_id == event_id)
        ).one()


def settlements_of(engine: Engine, organiser: str, provider: str) -> list[Any]:
    """The pair's settlements, oldest month first."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(settlements)
                .where(settlements.c.organiser == organiser, settlements.c.provider == provider)
                .order_by(settlements.c.month)
            ).all()
        )


def rows_of(engine: Engine, settlement_id: str) -> list[tuple[Any, ...]]:
    """(row_number, kind, code, name, unit, unit_price, quantity, amount) of a settlement's rows."""
    with engine.connect() as conn:
        found = conn.execute(
            select(settlement_rows)
            .where(settlement_rows.c.settlement_id == settlement_id)
            .order_by(settlement_rows.c.row_number)
        ).all()
    return [
        (r.row_number, r.kind, r.service_code, r.service_name, r.unit, r.unit_price, r.quantity, r.amount)
        for r in found
    ]


def items_of(engine: Engine, provider: str, event_id: str) -> list[Any]:
    """Every settlement item of one delivery."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(settlement_items).where(
                    settlement_items.c.provider == provider, settlement_items.c.event_id == event_id
                )
            ).all()
        )
