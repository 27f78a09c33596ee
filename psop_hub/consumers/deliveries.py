"""Deliveries (toteumat) against a voucher or an order: reported, corrected, cancelled.

Lock order, everywhere: the voucher or order row first, then the delivery row. Every writer of
one voucher takes its row lock, so concurrent deliveries serialise and its delivered total never
goes over the granted quantity. The voucher pays `min(price, unit_value)` per unit, the client
the rest; an order pays `min(price, unit_price)` and has no client share here.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Connection

from psop_hub.consumers.orders import require_order
from psop_hub.consumers.outcome import Context, Outcome, superseded
from psop_hub.consumers.vouchers import require_voucher
from psop_hub.hub.database import raw
from psop_hub.hub.errors import RuleBroken, Waiting
from psop_hub.hub.money import cents, number_text
from psop_hub.hub.tables import column_list, deliveries
from psop_hub.mappings.payloads import DeliveryCancelled, DeliveryCorrected, DeliveryReported

# Every statement of a delivery's path is a named raw statement (see hub.database.raw).
ADD_USED_VOUCHER = """
UPDATE vouchers SET quantity_used = quantity_used + %s, updated_at = now()
WHERE organiser = %s AND voucher_number = %s
"""
ADD_USED_ORDER = """
UPDATE orders SET quantity_used = quantity_used + %s, updated_at = now()
WHERE organiser = %s AND order_number = %s
"""
INSERT_DELIVERY = """
INSERT INTO deliveries (provider, event_id, organiser, voucher_number, order_number, service_date, unit,
                        quantity, price, unit_paid, voucher_share, client_share, status, version, hub_id,
                        service_code, service_name)
VALUES (%(provider)s, %(event_id)s, %(organiser)s, %(voucher_number)s, %(order_number)s, %(service_date)s,
        %(unit)s, %(quantity)s, %(price)s, %(unit_paid)s, %(organiser_share)s, %(client_share)s,
        'reported', 1, %(hub_id)s, %(service_code)s, %(service_name)s)
ON CONFLICT ON CONSTRAINT pk_deliveries DO NOTHING
RETURNING event_id
"""
# An earlier delivery of the same voucher or order that still waits (for the voucher, its
# assignment, or an earlier delivery in turn): this one waits behind it, so that deliveries take
# a voucher's or an order's quantity in the order they were received. One retried after an error
# (a crash, not a wait) holds nothing up, nor does one entered in the inbox already (applied in
# this very batch, its status written at the batch's end).
EARLIER_WAITING = """
SELECT w.hub_id FROM messages m JOIN messages w
  ON w.status = 'retrying' AND w.organiser = m.organiser AND w.reference = m.reference
 AND w.type = 'delivery.reported' AND w.errors @> '[{"waiting": true}]'
 AND (w.payload->>'voucher_number') IS NOT DISTINCT FROM (m.payload->>'voucher_number')
 AND (w.received_at, w.hub_id) < (m.received_at, m.hub_id)
 AND NOT EXISTS (SELECT 1 FROM inbox i WHERE i.consumer = 'state' AND i.hub_id = w.hub_id)
WHERE m.hub_id = %s
ORDER BY w.received_at, w.hub_id
LIMIT 1
"""
FIND_DELIVERY = (
    "SELECT organiser, voucher_number, order_number FROM deliveries WHERE provider = %s AND event_id = %s"
)
LOCK_DELIVERY = (
    f"SELECT {column_list(deliveries)} FROM deliveries WHERE provider = %s AND event_id = %s FOR UPDATE"
)
SET_DELIVERY = """
UPDATE deliveries SET quantity = %(quantity)s, voucher_share = %(organiser_share)s,
                      client_share = %(client_share)s, status = %(status)s, version = %(version)s,
                      updated_at = now()
WHERE provider = %(provider)s AND event_id = %(event_id)s
"""


@dataclass(frozen=True)
class Target:
    """The locked voucher or order a delivery books against."""

    kind: str
    number: str
    row: Any

    @property
    def cap(self) -> Decimal | None:
        """The most units it allows in all (an order may have none)."""
        return self.row.quantity

    def add_used(self, conn: Connection, delta: Decimal) -> None:
        """Move its delivered total by `delta` units."""
        sql = ADD_USED_VOUCHER if self.kind == "voucher" else ADD_USED_ORDER
        raw(conn).execute(sql, (delta, self.row.organiser, self.number))

    def check_room(self, used_after: Decimal, field: str) -> None:
        """`within_quantity`: the delivered total may not go over the cap."""
        if self.cap is not None and used_after > self.cap:
            remaining = max(Decimal(0), self.cap - self.row.quantity_used)
            raise RuleBroken(
                "within_quantity",
                f"this would take {self.kind} {self.number} to {number_text(used_after)} {self.row.unit}, "
                f"over its {number_text(self.cap)}; {number_text(remaining)} remain",
                field,
            )


def _target_of(
    conn: Connection, organiser: str, voucher_number: str | None, order_number: str | None
) -> Target:
    if voucher_number is not None:
        return Target("voucher", voucher_number, require_voucher(conn, organiser, voucher_number))
    assert order_number is not None
    return Target("order", order_number, require_order(conn, organiser, order_number))


def _check_voucher(v: Any, p: DeliveryReported) -> None:
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


def _check_order(o: Any, p: DeliveryReported) -> None:
    if o.provider != p.provider:
        raise RuleBroken(
            "ordered_provider_only", f"order {p.order_number} is for another provider", "payload.provider"
        )
    if p.service_date < o.start_date or (o.end_date is not None and p.service_date > o.end_date):
        raise RuleBroken(
            "inside_order_period",
            f"service_date {p.service_date} is outside the order's period {o.start_date}..{o.end_date or ''}",
            "payload.service_date",
        )


def reported(conn: Connection, ctx: Context, p: DeliveryReported) -> Outcome:
    """delivery.reported: checks every rule, then books the units and the shares (version 1)."""
    target = _target_of(conn, p.organiser, p.voucher_number, p.order_number)
    earlier = raw(conn).execute(EARLIER_WAITING, (ctx.hub_id,)).fetchone()
    if earlier is not None:
        raise Waiting(
            f"an earlier delivery on {target.kind} {target.number} ({earlier.hub_id}) waits: "
            "deliveries are applied in the order they were received"
        )
    row = target.row
    if target.kind == "voucher":
        _check_voucher(row, p)
        price = (
            p.price
            if p.price is not None
            else (row.provider_price if row.provider_price is not None else row.unit_value)
        )
        unit_paid = min(price, row.unit_value)
    else:
        _check_order(row, p)
        price = p.price if p.price is not None else row.unit_price
        unit_paid = min(price, row.unit_price)
    if p.unit != row.unit:
        raise RuleBroken(
            "voucher_unit" if target.kind == "voucher" else "order_unit",
            f"unit {p.unit} differs from the {target.kind}'s unit {row.unit}",
            "payload.unit",
        )
    target.check_room(row.quantity_used + p.quantity, "payload.quantity")
    paid = cents(unit_paid * p.quantity)
    client = cents(price * p.quantity) - paid if target.kind == "voucher" else Decimal("0.00")
    inserted = (
        raw(conn)
        .execute(
            INSERT_DELIVERY,
            {
                "provider": p.provider,
                "event_id": p.event_id,
                "organiser": p.organiser,
                "voucher_number": p.voucher_number,
                "order_number": p.order_number,
                "service_date": p.service_date,
                "unit": p.unit,
                "quantity": p.quantity,
                "price": price,
                "unit_paid": unit_paid,
                "organiser_share": paid,
                "client_share": client,
                "hub_id": ctx.hub_id,
                "service_code": row.service_code,
                "service_name": row.service_name,
            },
        )
        .fetchone()
    )
    if inserted is None:
        raise RuleBroken(
            "event_id_unique",
            f"event_id {p.event_id} was already reported by provider {p.provider} in another message",
            "payload.event_id",
        )
    target.add_used(conn, p.quantity)
    return Outcome(
        "applied",
        f"{number_text(p.quantity)} {p.unit} on {target.kind} {target.number}: "
        f"organiser pays {number_text(paid)}, client {number_text(client)}",
    )


def _locked_delivery(conn: Connection, p: DeliveryCorrected | DeliveryCancelled) -> tuple[Any, Target]:
    cur = raw(conn)
    found = cur.execute(FIND_DELIVERY, (p.provider, p.event_id)).fetchone()
    if found is None:
        raise Waiting(f"delivery {p.event_id} of provider {p.provider} has not arrived yet")
    # The voucher or order first, then the delivery: the lock order every writer of them keeps.
    target = _target_of(conn, found.organiser, found.voucher_number, found.order_number)
    return cur.execute(LOCK_DELIVERY, (p.provider, p.event_id)).fetchone(), target


def _set_delivery(
    conn: Connection,
    d: Any,
    *,
    quantity: Decimal,
    organiser_share: Decimal,
    client_share: Decimal,
    status: str,
    version: int,
) -> None:
    raw(conn).execute(
        SET_DELIVERY,
        {
            "quantity": quantity,
            "organiser_share": organiser_share,
            "client_share": client_share,
            "status": status,
            "version": version,
            "provider": d.provider,
            "event_id": d.event_id,
        },
    )


def corrected(conn: Connection, ctx: Context, p: DeliveryCorrected) -> Outcome:
    """delivery.corrected: a new quantity; gives back or takes the difference."""
    d, target = _locked_delivery(conn, p)
    old = superseded("delivery", p.event_id, p.version, d.version)
    if old:
        return old
    if d.status == "cancelled":
        raise RuleBroken("delivery_cancelled", f"delivery {p.event_id} is cancelled", "payload.event_id")
    delta = p.quantity - d.quantity
    if delta > 0:
        target.check_room(target.row.quantity_used + delta, "payload.quantity")
    paid = cents(d.unit_paid * p.quantity)
    client = cents(d.price * p.quantity) - paid if target.kind == "voucher" else Decimal("0.00")
    _set_delivery(
        conn,
        d,
        quantity=p.quantity,
        organiser_share=paid,
        client_share=client,
        status="corrected",
        version=p.version,
    )
    target.add_used(conn, delta)
    return Outcome(
        "applied",
        f"delivery {p.event_id} corrected from {number_text(d.quantity)} to {number_text(p.quantity)} "
        f"{d.unit}: organiser pays {number_text(paid)}",
    )


def cancelled(conn: Connection, ctx: Context, p: DeliveryCancelled) -> Outcome:
    """delivery.cancelled: gives its units back; nothing is payable for it any more."""
    d, target = _locked_delivery(conn, p)
    old = superseded("delivery", p.event_id, p.version, d.version)
    if old:
        return old
    if d.status != "cancelled":
        target.add_used(conn, -d.quantity)
    zero = Decimal("0.00")
    _set_delivery(
        conn,
        d,
        quantity=d.quantity,
        organiser_share=zero,
        client_share=zero,
        status="cancelled",
        version=p.version,
    )
    return Outcome(
        "applied",
        f"delivery {p.event_id} cancelled: {number_text(d.quantity)} {d.unit} given back to "
        f"{target.kind} {target.number}",
    )
