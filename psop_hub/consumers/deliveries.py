"""Deliveries (toteumat) against a voucher or an order: reported, corrected, cancelled.

Lock order, everywhere: the voucher or order row first, then the delivery row. Every writer of
one voucher takes its row lock, so concurrent deliveries serialise and its delivered total never
goes over the granted quantity. The voucher pays `min(price, unit_value)` per unit, the client
the rest; an order pays `min(price, unit_price)` and has no client share here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Connection

from psop_hub.consumers.orders import require_order
from psop_hub.consumers.outcome import Context, Outcome, superseded
from psop_hub.consumers.vouchers import require_voucher
from psop_hub.hub.database import raw
from psop_hub.hub.errors import RuleBroken, Waiting
from psop_hub.hub.money import cents, number_text
from psop_hub.hub.tables import column_list, deliveries, orders, vouchers
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
_WAITING_BEHIND = """
SELECT w.hub_id FROM messages m JOIN messages w
  ON w.status = 'retrying' AND w.organiser = m.organiser AND w.reference = m.reference
 AND w.type = 'delivery.reported' AND w.errors @> '[{"waiting": true}]'
 AND (w.payload->>'voucher_number') IS NOT DISTINCT FROM (m.payload->>'voucher_number')
 AND (w.received_at, w.hub_id) < (m.received_at, m.hub_id)
 AND NOT EXISTS (SELECT 1 FROM inbox i WHERE i.consumer = 'state' AND i.hub_id = w.hub_id)
"""
EARLIER_WAITING = _WAITING_BEHIND + "WHERE m.hub_id = %s ORDER BY w.received_at, w.hub_id LIMIT 1"


# The same for a batch of new deliveries (`reported_many`): whether any of them waits.
ANY_EARLIER_WAITING = _WAITING_BEHIND + "WHERE m.hub_id = ANY(%s) LIMIT 1"


def _lock_many(table: Table, number: str) -> str:
    """Lock the rows of `table` named by (organiser, `number`) pairs, in the lock order."""
    return f"""
SELECT {column_list(table)} FROM {table.name}
WHERE (organiser, {number}) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
ORDER BY organiser, {number}
FOR UPDATE
"""


LOCK_VOUCHERS = _lock_many(vouchers, "voucher_number")
LOCK_ORDERS = _lock_many(orders, "order_number")
INSERT_DELIVERIES = """
INSERT INTO deliveries (provider, event_id, organiser, voucher_number, order_number, service_date, unit,
                        quantity, price, unit_paid, voucher_share, client_share, status, version, hub_id,
                        service_code, service_name)
SELECT provider, event_id, organiser, voucher_number, order_number, service_date, unit, quantity, price,
       unit_paid, organiser_share, client_share, 'reported', 1, hub_id, service_code, service_name
FROM jsonb_to_recordset(%s::jsonb)
AS d(n int, provider text, event_id text, organiser text, voucher_number text, order_number text,
     service_date date, unit text, quantity numeric, price numeric, unit_paid numeric,
     organiser_share numeric, client_share numeric, hub_id uuid, service_code text, service_name text)
ORDER BY n
ON CONFLICT ON CONSTRAINT pk_deliveries DO NOTHING
RETURNING provider, event_id
"""
ADD_USED_VOUCHERS = """
UPDATE vouchers v SET quantity_used = v.quantity_used + d.delta, updated_at = now()
FROM unnest(%s::text[], %s::text[], %s::numeric[]) AS d(organiser, number, delta)
WHERE v.organiser = d.organiser AND v.voucher_number = d.number
"""
ADD_USED_ORDERS = """
UPDATE orders o SET quantity_used = o.quantity_used + d.delta, updated_at = now()
FROM unnest(%s::text[], %s::text[], %s::numeric[]) AS d(organiser, number, delta)
WHERE o.organiser = d.organiser AND o.order_number = d.number
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

    def check_room(self, used: Decimal, more: Decimal, field: str) -> None:
        """`within_quantity`: the delivered total (`used` now) may not go over the cap by `more`."""
        used_after = used + more
        if self.cap is not None and used_after > self.cap:
            remaining = max(Decimal(0), self.cap - used)
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


@dataclass(frozen=True)
class Booking:
    """What a new delivery books: its price, what the organiser pays a unit, the two shares."""

    price: Decimal
    unit_paid: Decimal
    paid: Decimal
    client: Decimal

    def row(self, hub_id: uuid.UUID, p: DeliveryReported, target: Target) -> dict[str, Any]:
        """The values of its deliveries row (INSERT_DELIVERY's parameters)."""
        return {
            "provider": p.provider,
            "event_id": p.event_id,
            "organiser": p.organiser,
            "voucher_number": p.voucher_number,
            "order_number": p.order_number,
            "service_date": p.service_date,
            "unit": p.unit,
            "quantity": p.quantity,
            "price": self.price,
            "unit_paid": self.unit_paid,
            "organiser_share": self.paid,
            "client_share": self.client,
            "hub_id": hub_id,
            "service_code": target.row.service_code,
            "service_name": target.row.service_name,
        }

    def outcome(self, p: DeliveryReported, target: Target) -> Outcome:
        return Outcome(
            "applied",
            f"{number_text(p.quantity)} {p.unit} on {target.kind} {target.number}: "
            f"organiser pays {number_text(self.paid)}, client {number_text(self.client)}",
        )


def _book(target: Target, used: Decimal, p: DeliveryReported) -> Booking:
    """Every rule of a new delivery on its locked voucher or order, whose delivered total is
    `used` now; what it books."""
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
    target.check_room(used, p.quantity, "payload.quantity")
    paid = cents(unit_paid * p.quantity)
    client = cents(price * p.quantity) - paid if target.kind == "voucher" else Decimal("0.00")
    return Booking(price, unit_paid, paid, client)


def _event_id_taken(p: DeliveryReported) -> RuleBroken:
    return RuleBroken(
        "event_id_unique",
        f"event_id {p.event_id} was already reported by provider {p.provider} in another message",
        "payload.event_id",
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
    booking = _book(target, target.row.quantity_used, p)
    inserted = raw(conn).execute(INSERT_DELIVERY, booking.row(ctx.hub_id, p, target)).fetchone()
    if inserted is None:
        raise _event_id_taken(p)
    target.add_used(conn, p.quantity)
    return booking.outcome(p, target)


def _key(p: DeliveryReported) -> tuple[str, str, str]:
    """The voucher or order a new delivery books on: (kind, organiser, number)."""
    if p.voucher_number is not None:
        return "voucher", p.organiser, p.voucher_number
    assert p.order_number is not None
    return "order", p.organiser, p.order_number


def reported_many(conn: Connection, items: Sequence[tuple[Context, Any]]) -> list[Outcome]:
    """`reported` for a batch of new deliveries, set-based: one statement locks every voucher
    (then every order) they book on, in the lock order of `consumers.apply.LOCK_ORDER`; one
    checks that none waits behind an earlier delivery; the rules run in memory, each delivery
    seeing the totals the ones before it booked; one statement inserts the deliveries and one per
    kind adds the totals. It raises at the first message that `reported` would not apply (a broken
    rule, a wait, an event_id taken): the caller rolls the batch back and applies it one by one,
    which then gives each message its own outcome."""
    cur = raw(conn)
    keys = [_key(p) for _, p in items]
    targets: dict[tuple[str, str, str], Target] = {}
    for kind, sql in (("voucher", LOCK_VOUCHERS), ("order", LOCK_ORDERS)):
        wanted = sorted({(organiser, number) for k, organiser, number in keys if k == kind})
        if wanted:
            for row in cur.execute(sql, ([w[0] for w in wanted], [w[1] for w in wanted])):
                number = row.voucher_number if kind == "voucher" else row.order_number
                targets[kind, row.organiser, number] = Target(kind, number, row)
    if cur.execute(ANY_EARLIER_WAITING, ([ctx.hub_id for ctx, _ in items],)).fetchone() is not None:
        raise Waiting("an earlier delivery on a voucher or order of this batch waits")
    used = {key: target.row.quantity_used for key, target in targets.items()}
    rows: list[dict[str, Any]] = []
    outcomes: list[Outcome] = []
    for (ctx, p), key in zip(items, keys, strict=True):
        target = targets.get(key)
        if target is None:
            raise Waiting(f"{key[0]} {key[2]} of organiser {key[1]} has not arrived yet")
        booking = _book(target, used[key], p)
        used[key] += p.quantity
        rows.append({"n": len(rows), **booking.row(ctx.hub_id, p, target)})
        outcomes.append(booking.outcome(p, target))
    inserted = {
        (r.provider, r.event_id) for r in cur.execute(INSERT_DELIVERIES, (json.dumps(rows, default=str),))
    }
    for _, p in items:
        if (p.provider, p.event_id) not in inserted:
            raise _event_id_taken(p)  # in the store before, or a second time in this batch
        inserted.discard((p.provider, p.event_id))
    for kind, sql in (("voucher", ADD_USED_VOUCHERS), ("order", ADD_USED_ORDERS)):
        moved = [(key, used[key] - t.row.quantity_used) for key, t in targets.items() if key[0] == kind]
        if moved:
            cur.execute(sql, ([k[1] for k, _ in moved], [k[2] for k, _ in moved], [d for _, d in moved]))
    return outcomes


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
        target.check_room(target.row.quantity_used, delta, "payload.quantity")
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
