"""Property-based: random sequences of grants, assignments, amendments, revocations, deliveries,
corrections and cancellations, shuffled and applied by two worker threads at once, leave the
voucher exactly as a simple in-memory model does when it is fed the same messages in the order
the database serialised them; and no delivery ever takes the voucher over its quantity."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.engine import Engine

from psop_hub.consumers.apply import apply
from psop_hub.hub.errors import Waiting
from psop_hub.hub.tables import deliveries, journey
from tests.integration.helpers import PROVIDER_SENDER, SYSTEM, stored, voucher_row
from tests.messages import amended, assigned, cancelled, corrected, delivery, granted, revoked, uid

QUANTITIES = st.sampled_from(["0.5", "1", "1.25", "2", "3", "4.75"])
# Dates on and around every boundary: validity, amended ends, revocations.
DATES = st.sampled_from(
    [
        date(2026, 10, 31),
        date(2026, 11, 1),
        date(2026, 11, 20),
        date(2026, 12, 31),
        date(2027, 1, 1),
        date(2027, 6, 30),
        date(2027, 7, 1),
        date(2027, 12, 31),
        date(2028, 1, 1),
    ]
)


@dataclass
class Op:
    """One generated message, before ids are known."""

    kind: str
    args: dict[str, Any]


@st.composite
def scenarios(draw: st.DrawFn) -> list[Op]:
    """A voucher's life: grant, assignment, then a random mix of everything else."""
    ops = [Op("grant", {"quantity": draw(st.sampled_from(["3", "5", "8"]))}), Op("assign", {})]
    events = 0
    for _ in range(draw(st.integers(3, 14))):
        kind = draw(
            st.sampled_from(["deliver", "deliver", "deliver", "correct", "cancel", "amend", "revoke"])
        )
        if kind == "deliver":
            ops.append(Op("deliver", {"event": events, "quantity": draw(QUANTITIES), "date": draw(DATES)}))
            events += 1
        elif kind in ("correct", "cancel") and events:
            args = {"event": draw(st.integers(0, events - 1)), "version": draw(st.integers(2, 4))}
            if kind == "correct":
                args["quantity"] = draw(QUANTITIES)
            ops.append(Op(kind, args))
        elif kind == "amend":
            change = draw(st.sampled_from(["quantity", "unit_value", "valid_to"]))
            value = {
                "quantity": draw(st.sampled_from(["2", "4", "6", "10"])),
                "unit_value": draw(st.sampled_from(["20.00", "27.50", "35.00"])),
                "valid_to": draw(st.sampled_from(["2026-12-31", "2027-06-30", "2027-12-31"])),
            }[change]
            ops.append(Op("amend", {"version": draw(st.integers(2, 6)), change: value}))
        elif kind == "revoke":
            ops.append(Op("revoke", {"version": draw(st.integers(2, 6)), "date": draw(DATES)}))
    order = draw(st.permutations(range(len(ops))))
    return [ops[i] for i in order]


def cents(value: Decimal) -> Decimal:
    """As the hub rounds money."""
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@dataclass
class Model:
    """The rules of INTERFACES §2 for one voucher, in plain Python."""

    quantity: Decimal = Decimal(0)
    unit_value: Decimal = Decimal("25.00")
    valid_to: date = date(2027, 12, 31)
    version: int = 1
    revoked_from: date | None = None
    used: Decimal = Decimal(0)
    deliveries: dict[str, dict[str, Any]] = field(default_factory=dict)

    def apply(self, op: Op, event_id: str | None) -> str:
        """Apply one message; returns its status."""
        a = op.args
        if op.kind == "grant":
            self.quantity = Decimal(a["quantity"])
            return "applied"
        if op.kind == "assign":
            return "rejected" if self.revoked_from is not None else "applied"
        if op.kind in ("amend", "revoke"):
            if a["version"] <= self.version:
                return "superseded"
            if op.kind == "revoke":
                self.version, self.revoked_from = a["version"], a["date"]
                return "applied"
            if self.revoked_from is not None:
                return "rejected"
            self.version = a["version"]
            self.quantity = Decimal(a.get("quantity", self.quantity))
            self.unit_value = Decimal(a.get("unit_value", self.unit_value))
            self.valid_to = date.fromisoformat(a["valid_to"]) if "valid_to" in a else self.valid_to
            return "applied"
        assert event_id is not None
        if op.kind == "deliver":
            q, day = Decimal(a["quantity"]), a["date"]
            if not date(2026, 11, 1) <= day <= self.valid_to:
                return "rejected"
            if self.revoked_from is not None and day >= self.revoked_from:
                return "rejected"
            if self.used + q > self.quantity:
                return "rejected"
            unit_paid = min(Decimal("30.00"), self.unit_value)
            self.deliveries[event_id] = {"q": q, "v": 1, "status": "reported", "unit_paid": unit_paid}
            self.used += q
            assert self.used <= self.quantity
            return "applied"
        d = self.deliveries[event_id]
        if a["version"] <= d["v"]:
            return "superseded"
        if op.kind == "correct":
            if d["status"] == "cancelled":
                return "rejected"
            q = Decimal(a["quantity"])
            if q > d["q"] and self.used + q - d["q"] > self.quantity:
                return "rejected"
            self.used += q - d["q"]
            d.update(q=q, v=a["version"], status="corrected")
            return "applied"
        if d["status"] != "cancelled":
            self.used -= d["q"]
        d.update(v=a["version"], status="cancelled")
        return "applied"


def to_message(op: Op, number: str, event_ids: list[str]) -> tuple[dict[str, Any], Any]:
    """The canonical message (and its sender) for a generated operation."""
    a = op.args
    if op.kind == "grant":
        return granted(number, quantity=a["quantity"]), SYSTEM
    if op.kind == "assign":
        return assigned(number, price="30.00"), SYSTEM
    if op.kind == "amend":
        return amended(number, a["version"], **{k: v for k, v in a.items() if k != "version"}), SYSTEM
    if op.kind == "revoke":
        return revoked(number, a["version"], a["date"].isoformat()), SYSTEM
    ev = event_ids[a["event"]]
    if op.kind == "deliver":
        return delivery(
            number, a["quantity"], event_id=ev, service_date=a["date"].isoformat()
        ), PROVIDER_SENDER
    if op.kind == "correct":
        return corrected(ev, a["version"], a["quantity"]), PROVIDER_SENDER
    return cancelled(ev, a["version"]), PROVIDER_SENDER


def two_workers(engine: Engine, hub_ids: list[Any]) -> None:
    """Apply every message from two threads; a waiting message goes to the back of the queue."""
    queue: deque[Any] = deque(hub_ids)
    lock = threading.Lock()
    waits: dict[Any, int] = {}

    def work() -> None:
        while True:
            with lock:
                if not queue:
                    return
                hub_id = queue.popleft()
            try:
                apply(engine, hub_id, 1)
            except Waiting:
                with lock:
                    waits[hub_id] = waits.get(hub_id, 0) + 1
                    if waits[hub_id] < 40:  # a correction of a rejected delivery waits for ever
                        queue.append(hub_id)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=scenarios())
def test_two_workers_agree_with_the_model(engine: Engine, ops: list[Op]) -> None:
    number = uid("P")
    event_ids = [uid("ev") for _ in range(sum(op.kind == "deliver" for op in ops))]
    hub_ids = [stored(engine, *to_message(op, number, event_ids)) for op in ops]
    two_workers(engine, hub_ids)

    with engine.connect() as conn:
        done = conn.execute(
            select(journey.c.hub_id, journey.c.step)
            .where(journey.c.hub_id.in_(hub_ids), journey.c.step.in_(["applied", "rejected", "superseded"]))
            # In time order: a rejection keeps the time it was decided (under the voucher's lock),
            # though it is written after its savepoint's rollback has released that lock.
            .order_by(journey.c.at, journey.c.id)
        ).all()
        rows = {
            r.event_id: r
            for r in conn.execute(select(deliveries).where(deliveries.c.voucher_number == number)).all()
        }
    by_hub_id = dict(zip(hub_ids, ops, strict=True))
    model = Model()
    for hub_id, status in done:
        op = by_hub_id[hub_id]
        ev = event_ids[op.args["event"]] if "event" in op.args else None
        assert model.apply(op, ev) == status, (op, status)

    v = voucher_row(engine, number)
    assert v.quantity_used == model.used
    assert v.version == model.version
    assert v.quantity == model.quantity
    assert set(rows) == set(model.deliveries)
    for ev, d in model.deliveries.items():
        row = rows[ev]
        assert (row.quantity, row.status, row.version) == (d["q"], d["status"], d["v"])
        share = Decimal("0.00") if d["status"] == "cancelled" else cents(d["unit_paid"] * d["q"])
        assert row.voucher_share == share
    live = sum((r.quantity for r in rows.values() if r.status != "cancelled"), Decimal(0))
    assert live == v.quantity_used
