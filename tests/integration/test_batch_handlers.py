"""Batches of one type with a set-based handler (`consumers.handlers.BATCH_HANDLERS`) are applied
all together: new deliveries (what a file brings: one statement locks their vouchers and orders,
one inserts the deliveries, one per kind adds the totals) and grants (one insert).
Property-based for deliveries: whatever the batch holds (over the quantity, outside the
validity, the wrong unit, an event_id taken before or twice in the batch, a voucher with no
provider yet), each message gets exactly the outcome, and the state exactly the values, that
applying the same messages one at a time in the batch's order gives in a twin world; and a
batch of valid ones does take the set-based path. Grants likewise, with vouchers granted before
or twice in the batch."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.engine import Engine

from psop_hub.consumers import deliveries as deliveries_rules
from psop_hub.consumers import handlers
from psop_hub.consumers import vouchers as voucher_rules
from psop_hub.consumers.apply import LOCK_ORDER, Result, apply, apply_batch
from psop_hub.hub.database import raw
from psop_hub.hub.tables import deliveries, orders, vouchers
from tests.integration.helpers import PROVIDER_SENDER, stored
from tests.messages import ORGANISER, assigned, delivery, granted, order_delivery, placed, uid

QUANTITIES = st.sampled_from(["0.5", "1", "2", "3.25", "6"])
VOUCHER_DATES = st.sampled_from(["2026-11-15", "2026-10-31", "2027-12-31", "2028-01-01"])
ORDER_DATES = st.sampled_from(["2026-11-20", "2026-10-31", "2027-06-30", "2027-07-01"])


@st.composite
def batches(draw: st.DrawFn) -> tuple[bool, list[dict[str, Any]]]:
    """(clean, records): each record names its target (v0: assigned voucher, v1: voucher with no
    provider yet, o0: order) and its values; a clean batch holds only deliveries that apply."""
    clean = draw(st.booleans())
    records: list[dict[str, Any]] = []
    for k in range(draw(st.integers(2, 12))):
        target = "v0" if clean else draw(st.sampled_from(["v0", "v0", "o0", "o0", "v1"]))
        if clean and draw(st.booleans()):
            target = "o0"
        record: dict[str, Any] = {"target": target, "event": f"ev{k}", "quantity": draw(QUANTITIES)}
        if not clean:
            dates = ORDER_DATES if target == "o0" else VOUCHER_DATES
            record["service_date"] = draw(dates)
            if draw(st.integers(0, 9)) == 0:
                record["unit"] = "day"
            repeat = draw(st.integers(0, 9))
            if repeat == 0:
                record["event"] = "taken"
            elif repeat == 1 and records:
                record["event"] = draw(st.sampled_from([r["event"] for r in records]))
        if draw(st.booleans()):
            record["price"] = draw(st.sampled_from(["20.00", "25.00", "31.50", "45.00"]))
        records.append(record)
    return clean, records


class World:
    """Two vouchers and an order, numbered `<base>-<side>-...` so that both sides sort alike."""

    def __init__(self, engine: Engine, base: str, side: str, clean: bool) -> None:
        self.engine, self.side = engine, side
        self.v0, self.v1, self.o0 = f"{base}-{side}-v0", f"{base}-{side}-v1", f"{base}-{side}-o0"
        big = "1000" if clean else "9"
        apply(engine, stored(engine, granted(self.v0, quantity=big)), 1)
        apply(engine, stored(engine, assigned(self.v0)), 1)
        apply(engine, stored(engine, granted(self.v1, quantity=big)), 1)
        apply(engine, stored(engine, placed(self.o0, quantity=big)), 1)
        taken = delivery(self.v0, "1", event_id=self.event("taken"))
        assert apply(engine, stored(engine, taken, PROVIDER_SENDER), 1).status == "applied"

    def event(self, name: str) -> str:
        return f"{self.v0}-{name}"

    def store(self, record: dict[str, Any]) -> uuid.UUID:
        over = {k: record[k] for k in ("service_date", "unit", "price") if k in record}
        event_id = self.event(record["event"])
        if record["target"] == "o0":
            over.setdefault("unit", "visit")
            raw_message = order_delivery(self.o0, record["quantity"], event_id=event_id, **over)
        else:
            number = self.v0 if record["target"] == "v0" else self.v1
            raw_message = delivery(number, record["quantity"], event_id=event_id, **over)
        return stored(self.engine, raw_message, PROVIDER_SENDER)

    def state(self) -> dict[str, Any]:
        """The totals and the deliveries of this side, named alike on both sides."""
        with self.engine.connect() as conn:
            used = [
                conn.execute(
                    select(vouchers.c.quantity_used).where(
                        vouchers.c.organiser == ORGANISER, vouchers.c.voucher_number == number
                    )
                ).scalar_one()
                for number in (self.v0, self.v1)
            ]
            used.append(
                conn.execute(
                    select(orders.c.quantity_used).where(
                        orders.c.organiser == ORGANISER, orders.c.order_number == self.o0
                    )
                ).scalar_one()
            )
            rows = conn.execute(
                select(deliveries)
                .where(deliveries.c.event_id.like(f"{self.v0}-%"))
                .order_by(deliveries.c.event_id)
            ).all()
        booked = [
            (
                r.event_id.removeprefix(self.v0),
                r.quantity,
                r.price,
                r.unit_paid,
                r.voucher_share,
                r.client_share,
                r.status,
                r.version,
                r.service_code,
            )
            for r in rows
        ]
        return {"used": used, "deliveries": booked}


def outcome_text(outcome: Result | Exception, world: World) -> str:
    """An outcome as text, with this side's numbers made alike."""
    text = (
        f"{outcome.status}: {outcome.detail}"
        if isinstance(outcome, Result)
        else f"{type(outcome).__name__}: {outcome}"
    )
    return text.replace(f"-{world.side}-", "-X-")


def lock_order(engine: Engine, ids: list[uuid.UUID]) -> list[uuid.UUID]:
    with engine.connect() as conn:
        return [r.hub_id for r in raw(conn).execute(LOCK_ORDER, (ids,))]


@pytest.fixture
def bulk_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """How each call of the set-based path ended: "applied" or the exception's name."""
    calls: list[str] = []
    assert handlers.BATCH_HANDLERS["delivery.reported"] is deliveries_rules.reported_many
    assert handlers.BATCH_HANDLERS["voucher.granted"] is voucher_rules.granted_many

    def spy(original: Callable[..., Any]) -> Callable[..., Any]:
        def spying(*args: Any) -> Any:
            try:
                outcomes = original(*args)
            except Exception as exc:
                calls.append(type(exc).__name__)
                raise
            calls.append("applied")
            return outcomes

        return spying

    for name, original in list(handlers.BATCH_HANDLERS.items()):
        monkeypatch.setitem(handlers.BATCH_HANDLERS, name, spy(original))
    return calls


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches())
def test_a_batch_applies_exactly_as_its_messages_one_at_a_time(
    engine: Engine, bulk_calls: list[str], drawn: tuple[bool, list[dict[str, Any]]]
) -> None:
    clean, records = drawn
    base = uid("B")
    batch, single = World(engine, base, "A", clean), World(engine, base, "B", clean)
    pairs = [(batch.store(r), single.store(r)) for r in records]  # received alike, one after the other
    twin = dict(pairs)

    bulk_calls.clear()
    results = apply_batch(engine, [a for a, _ in reversed(pairs)], 1)
    one_at_a_time: dict[uuid.UUID, Result | Exception] = {}
    for hub_id in lock_order(engine, [b for _, b in pairs]):
        try:
            one_at_a_time[hub_id] = apply(engine, hub_id, 1)
        except Exception as exc:
            one_at_a_time[hub_id] = exc

    assert [outcome_text(results[a], batch) for a, _ in pairs] == [
        outcome_text(one_at_a_time[twin[a]], single) for a, _ in pairs
    ]
    assert batch.state() == single.state()
    if clean:
        assert bulk_calls == ["applied"]
        assert all(isinstance(results[a], Result) and results[a].status == "applied" for a, _ in pairs)  # type: ignore[union-attr]


def test_concurrent_batches_on_the_same_vouchers_never_go_over_nor_deadlock(
    engine: Engine, bulk_calls: list[str]
) -> None:
    """Two workers apply batches that book on the same three vouchers (listed in opposite orders)
    at once: every delivery is applied or rejected by within_quantity, and no voucher goes over."""
    numbers = [uid("V") for _ in range(3)]
    for number in numbers:
        apply(engine, stored(engine, granted(number, quantity="20")), 1)
        apply(engine, stored(engine, assigned(number)), 1)
    sides = [
        [stored(engine, delivery(n, "1"), PROVIDER_SENDER) for _ in range(15) for n in numbers],
        [stored(engine, delivery(n, "1"), PROVIDER_SENDER) for _ in range(15) for n in reversed(numbers)],
    ]
    outcomes: dict[uuid.UUID, Result | Exception] = {}
    start = threading.Barrier(2)

    def work(ids: list[uuid.UUID]) -> None:
        start.wait()
        for i in range(0, len(ids), 9):
            outcomes.update(apply_batch(engine, ids[i : i + 9], 1))

    threads = [threading.Thread(target=work, args=(ids,)) for ids in sides]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    statuses = [o.status if isinstance(o, Result) else type(o).__name__ for o in outcomes.values()]
    assert len(statuses) == 90 and set(statuses) <= {"applied", "rejected"}, statuses
    assert statuses.count("applied") == 60
    with engine.connect() as conn:
        used = (
            conn.execute(select(vouchers.c.quantity_used).where(vouchers.c.voucher_number.in_(numbers)))
            .scalars()
            .all()
        )
    assert used == [Decimal(20)] * 3
    # Set-based until the vouchers were full (a batch with a rejection is applied one by one).
    assert "applied" in bulk_calls and set(bulk_calls) <= {"applied", "RuleBroken"}, bulk_calls


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["new", "new", "new", "before", "again"]), min_size=2, max_size=10))
def test_a_batch_of_grants_applies_exactly_as_one_at_a_time(
    engine: Engine, bulk_calls: list[str], kinds: list[str]
) -> None:
    base = uid("G")
    sides: dict[str, list[uuid.UUID]] = {"A": [], "B": []}
    for side, ids in sides.items():
        apply(engine, stored(engine, granted(f"{base}-{side}-before")), 1)
        for k, kind in enumerate(kinds):
            number = {"new": f"{base}-{side}-{k}", "before": f"{base}-{side}-before"}.get(kind)
            if number is None:  # the same voucher as a grant earlier in this batch, or a new one
                earlier = [j for j in range(k) if kinds[j] == "new"]
                number = f"{base}-{side}-{earlier[-1] if earlier else k}"
            ids.append(stored(engine, granted(number, quantity=str(10 + k))))
    bulk_calls.clear()
    results = apply_batch(engine, list(reversed(sides["A"])), 1)
    one_at_a_time: dict[uuid.UUID, Result | Exception] = {}
    for hub_id in lock_order(engine, sides["B"]):
        one_at_a_time[hub_id] = apply(engine, hub_id, 1)

    def text(outcome: Result | Exception, side: str) -> str:
        assert isinstance(outcome, Result)
        return f"{outcome.status}: {outcome.detail}".replace(f"-{side}-", "-X-")

    assert [text(results[a], "A") for a in sides["A"]] == [text(one_at_a_time[b], "B") for b in sides["B"]]
    with engine.connect() as conn:
        granted_rows = {
            side: [
                (r.voucher_number.replace(f"-{side}-", "-X-"), r.quantity, r.status, r.version)
                for r in conn.execute(
                    select(vouchers)
                    .where(vouchers.c.voucher_number.like(f"{base}-{side}-%"))
                    .order_by(vouchers.c.voucher_number)
                )
            ]
            for side in sides
        }
    assert granted_rows["A"] == granted_rows["B"]
    if all(kind == "new" for kind in kinds):
        assert bulk_calls == ["applied"]
