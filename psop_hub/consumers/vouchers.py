"""Voucher state: grants, assignments and deliveries against a voucher, each rule named."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from psop_hub.consumers.outcome import Context, Outcome
from psop_hub.hub.errors import RuleBroken, Waiting
from psop_hub.hub.tables import deliveries, vouchers

CENT = Decimal("0.01")


def cents(value: Decimal) -> Decimal:
    """Round money to the cent, halves away from zero (as Finnish invoicing does)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def lock_voucher(conn: Connection, organiser: str, voucher_number: str) -> Any:
    """The voucher row, locked until commit so that concurrent deliveries serialise; None if absent."""
    return conn.execute(
        select(vouchers)
        .where(vouchers.c.organiser == organiser, vouchers.c.voucher_number == voucher_number)
        .with_for_update()
    ).one_or_none()


def require_voucher(conn: Connection, organiser: str, voucher_number: str) -> Any:
    """The locked voucher; `Waiting` if its grant has not arrived yet (it is retried)."""
    row = lock_voucher(conn, organiser, voucher_number)
    if row is None:
        raise Waiting(f"voucher {voucher_number} of organiser {organiser} has not arrived yet")
    return row


def granted(conn: Connection, ctx: Context, p: Any) -> Outcome:
    """voucher.granted: a new voucher, version 1."""
    inserted = conn.execute(
        pg_insert(vouchers)
        .values(
            organiser=p.organiser,
            voucher_number=p.voucher_number,
            status="granted",
            version=1,
            decision_date=p.decision_date,
            client_hetu=p.client.hetu,
            home_municipality=p.client.home_municipality,
            service_code=p.service.code,
            service_name=p.service.name,
            unit=p.unit,
            unit_value=p.unit_value,
            quantity=p.quantity,
            valid_from=p.valid_from,
            valid_to=p.valid_to,
        )
        .on_conflict_do_nothing(constraint="pk_vouchers")
        .returning(vouchers.c.voucher_number)
    ).scalar_one_or_none()
    if inserted is None:
        raise RuleBroken(
            "voucher_already_granted",
            f"voucher {p.voucher_number} of organiser {p.organiser} was granted already; "
            "send voucher.amended to change it",
            "payload.voucher_number",
        )
    return Outcome("applied", f"voucher {p.voucher_number} granted: {p.quantity} {p.unit} at {p.unit_value}")


def assigned(conn: Connection, ctx: Context, p: Any) -> Outcome:
    """voucher.assigned: the provider the client chose, from `start_date` on."""
    v = require_voucher(conn, p.organiser, p.voucher_number)
    if v.status == "revoked":
        raise RuleBroken(
            "voucher_revoked", f"voucher {p.voucher_number} is revoked", "payload.voucher_number"
        )
    if not v.valid_from <= p.start_date <= v.valid_to:
        raise RuleBroken(
            "assignment_inside_validity",
            f"start_date {p.start_date} is outside the voucher's validity {v.valid_from}..{v.valid_to}",
            "payload.start_date",
        )
    if v.provider is not None and v.provider != p.provider and v.quantity_used > 0:
        raise RuleBroken(
            "provider_change_after_deliveries",
            f"voucher {p.voucher_number} already has deliveries from provider {v.provider}",
            "payload.provider",
        )
    conn.execute(
        update(vouchers)
        .where(vouchers.c.organiser == p.organiser, vouchers.c.voucher_number == p.voucher_number)
        .values(
            provider=p.provider,
            provider_price=p.provider_price,
            assigned_from=p.start_date,
            status="assigned" if v.status == "granted" else v.status,
            updated_at=func.now(),
        )
    )
    return Outcome("applied", f"voucher {p.voucher_number} assigned to provider {p.provider}")


def delivery_on_voucher(conn: Connection, ctx: Context, p: Any) -> Outcome:
    """delivery.reported against a voucher: checks every rule, then books the units and the shares."""
    v = require_voucher(conn, p.organiser, p.voucher_number)
    _check_delivery_rules(v, p)
    price = (
        p.price
        if p.price is not None
        else (v.provider_price if v.provider_price is not None else v.unit_value)
    )
    unit_paid = min(price, v.unit_value)
    voucher_share = cents(unit_paid * p.quantity)
    client_share = cents(price * p.quantity) - voucher_share
    inserted = conn.execute(
        pg_insert(deliveries)
        .values(
            provider=p.provider,
            event_id=p.event_id,
            organiser=p.organiser,
            voucher_number=p.voucher_number,
            service_date=p.service_date,
            unit=p.unit,
            quantity=p.quantity,
            price=price,
            unit_paid=unit_paid,
            voucher_share=voucher_share,
            client_share=client_share,
            status="reported",
            version=1,
            hub_id=ctx.hub_id,
        )
        .on_conflict_do_nothing(constraint="pk_deliveries")
        .returning(deliveries.c.event_id)
    ).scalar_one_or_none()
    if inserted is None:
        raise RuleBroken(
            "event_id_unique",
            f"event_id {p.event_id} was already reported by provider {p.provider} in another message",
            "payload.event_id",
        )
    conn.execute(
        update(vouchers)
        .where(vouchers.c.organiser == p.organiser, vouchers.c.voucher_number == p.voucher_number)
        .values(quantity_used=vouchers.c.quantity_used + p.quantity, updated_at=func.now())
    )
    return Outcome(
        "applied",
        f"{p.quantity} {p.unit} on voucher {p.voucher_number}: "
        f"voucher pays {voucher_share}, client {client_share}",
    )


def _check_delivery_rules(v: Any, p: Any) -> None:
    if v.provider is None:
        raise Waiting(f"voucher {p.voucher_number} has no provider assigned yet")
    if v.provider != p.provider:
        raise RuleBroken(
            "assigned_provider_only",
            f"voucher {p.voucher_number} is assigned to another provider",
            "payload.provider",
        )
    if not v.valid_from <= p.service_date <= v.valid_to:
        raise RuleBroken(
            "inside_validity",
            f"service_date {p.service_date} is outside the voucher's validity {v.valid_from}..{v.valid_to}",
            "payload.service_date",
        )
    if v.assigned_from is not None and p.service_date < v.assigned_from:
        raise RuleBroken(
            "after_assignment",
            f"service_date {p.service_date} is before the assignment's start {v.assigned_from}",
            "payload.service_date",
        )
    if v.effective_end is not None and p.service_date >= v.effective_end:
        raise RuleBroken(
            "before_revocation",
            f"service_date {p.service_date} is on or after the revocation's effective date {v.effective_end}",
            "payload.service_date",
        )
    if p.unit != v.unit:
        raise RuleBroken(
            "voucher_unit", f"unit {p.unit} differs from the voucher's unit {v.unit}", "payload.unit"
        )
    if v.quantity_used + p.quantity > v.quantity:
        remaining = v.quantity - v.quantity_used
        raise RuleBroken(
            "within_quantity",
            f"quantity {p.quantity} exceeds the voucher's remaining {remaining} {v.unit}",
            "payload.quantity",
        )
