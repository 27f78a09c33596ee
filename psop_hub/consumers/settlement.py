"""Monthly settlements: what each organiser owes each provider for one calendar month.

`build_settlements(engine, month)` creates, for every (organiser, provider) pair with something to
settle, ONE settlement for `month`, in its own transaction:

- id `PS-<organiser digits>-<provider digits>-<YYYYMM>`, e.g. `PS-20774740-15728600-202611`: the
  business IDs without their hyphen (fixed width, so the id is unambiguous) and the month; the
  same pair and month always give the same id;
- reference: a Finnish reference number (viitenumero) on the base `<YYYYMM><seq:06d>`, `seq` from
  `settlement_reference_seq`, so it is unique however many organisers share the hub;
- items (`settlement_items`): every delivery of the pair with a service date before the first day
  of the next month whose payable quantity and amount (0 once cancelled) differ from what earlier
  settlements covered (`deliveries.settled_*`), with the difference; the delivery's `settled_*` are
  set to the payable values in the same transaction;
- rows (`settlement_rows`): the items summed per (kind, service month, service, unit, unit
  price), kind `delivery` for a delivery of the month settled for the first time and `adjustment`
  for a change to one settled before or a delivery of an earlier month; every row names its
  `service_month`; `amount` is the sum of the rows, to the cent, and may be zero or negative (a
  credit).

Late and changed deliveries: a delivery reported late for an earlier month goes into the next
settlement built for its pair, as an `adjustment` row naming its service month. Deliveries
corrected or cancelled after settlement go into the next month's settlement as adjustments too
(naming the month they were delivered in): a settlement, once built, never changes. If the pair's
settlement for `month` exists already, new differences wait for the next month's run; if it does
not (the pair had nothing to settle when the month was first settled), running `month` again
creates it with what has come in since.

Running twice creates nothing twice: `uq_settlements_period` and "nothing left to settle" both
hold. Concurrent runs (the scheduler of each replica, an admin's `hub settle`) serialise per pair on
a transaction-level advisory lock, and the deliveries settled are locked `FOR UPDATE`, so a
correction applied meanwhile either lands before (and is settled) or waits (and is settled next).

`run_scheduler` is `hub scheduler`: it settles the previous month once this month's settle moment
(`HUB_SETTLE_DAY` at `HUB_SETTLE_HOUR`, Europe/Helsinki) has passed, re-checking every
`HUB_SCHEDULER_INTERVAL_S`; repeating a run is harmless.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import case, exists, insert, literal, or_, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.expression import bindparam

from psop_hub.hub.calendar import first_of_month, helsinki_now, next_month, previous_month
from psop_hub.hub.database import already_exists, unavailable_on_outage
from psop_hub.hub.errors import AlreadyExists, RuleBroken, TransientError
from psop_hub.hub.identifiers import finnish_reference
from psop_hub.hub.settings import Settings
from psop_hub.hub.tables import (
    MONEY,
    QUANTITY,
    deliveries,
    settlement_items,
    settlement_reference_seq,
    settlement_rows,
    settlements,
)

log = logging.getLogger(__name__)

ZERO = Decimal("0.00")
# First key of the two-key advisory lock: keeps ours apart from any other advisory locks.
_LOCK_NAMESPACE = 0x50534F50  # "PSOP"
# The constraints a concurrent run that skipped the lock would hit; anything else is a bug.
_PERIOD_TAKEN = frozenset({"uq_settlements_period", "pk_settlements"})

# What the organiser owes for a delivery now: nothing once it is cancelled.
_payable_quantity = case(
    (deliveries.c.status == "cancelled", literal(ZERO, QUANTITY)), else_=deliveries.c.quantity
)
_payable_amount = case(
    (deliveries.c.status == "cancelled", literal(ZERO, MONEY)), else_=deliveries.c.voucher_share
)
_unsettled = or_(
    _payable_quantity != deliveries.c.settled_quantity, _payable_amount != deliveries.c.settled_amount
)


@dataclass(frozen=True)
class SettlementSummary:
    """One settlement a run created."""

    settlement_id: str
    organiser: str
    provider: str
    month: date
    reference: str
    amount: Decimal
    rows: int
    items: int

    def line(self) -> str:
        """One line for logs and `hub settle`: id, reference, amount, then the details."""
        return (
            f"{self.settlement_id} reference {self.reference} amount {self.amount} "
            f"(organiser {self.organiser}, provider {self.provider}, "
            f"{self.rows} rows, {self.items} deliveries)"
        )


@dataclass(frozen=True)
class Item:
    """One delivery's change since it was last settled."""

    event_id: str
    kind: str
    service_code: str
    service_name: str
    unit: str
    unit_price: Decimal
    quantity: Decimal
    amount: Decimal
    settled_quantity: Decimal
    settled_amount: Decimal
    service_month: date | None = None  # the first day of the month it was delivered in


@dataclass(frozen=True)
class Row:
    """One settlement row: items of one kind, service, unit and unit price, summed."""

    row_number: int
    kind: str
    service_code: str
    service_name: str
    unit: str
    unit_price: Decimal
    quantity: Decimal
    amount: Decimal
    service_month: date | None = None


def settlement_id_for(organiser: str, provider: str, month: date) -> str:
    """The stable id of a pair's settlement for a month: `PS-20774740-15728600-202611`."""
    return f"PS-{organiser.replace('-', '')}-{provider.replace('-', '')}-{month:%Y%m}"


def reference_for(month: date, seq: int) -> str:
    """The Finnish reference number of the `seq`th settlement, built in `month`'s name."""
    return finnish_reference(f"{month:%Y%m}{seq:06d}")


def group_rows(items: Sequence[Item]) -> list[Row]:
    """Sum items into rows, numbered 1..n: deliveries before adjustments, adjustments by their
    service month, then by service and price."""
    sums: dict[tuple[str, date | None, str, str, str, Decimal], tuple[Decimal, Decimal]] = {}
    for item in items:
        key = (
            item.kind,
            item.service_month,
            item.service_code,
            item.service_name,
            item.unit,
            item.unit_price,
        )
        quantity, amount = sums.get(key, (ZERO, ZERO))
        sums[key] = (quantity + item.quantity, amount + item.amount)
    order = sorted(sums, key=lambda k: (k[0] != "delivery", k[1] or date.min, *k[2:]))
    rows: list[Row] = []
    for number, key in enumerate(order, start=1):
        kind, month, code, name, unit, price = key
        rows.append(Row(number, kind, code, name, unit, price, *sums[key], service_month=month))
    return rows


def build_settlements(
    engine: Engine, month: date, today: date | None = None, *, stop: threading.Event | None = None
) -> list[SettlementSummary]:
    """Settle `month` (any day of it) for every pair with something to settle; returns what was created."""
    month = first_of_month(month)
    today = today or helsinki_now().date()
    if month > first_of_month(today):
        raise RuleBroken("month_begun", f"{month:%Y-%m} has not begun yet: there is nothing to settle")
    end = next_month(month)
    taken = exists().where(
        settlements.c.organiser == deliveries.c.organiser,
        settlements.c.provider == deliveries.c.provider,
        settlements.c.month == month,
    )
    with unavailable_on_outage(), engine.connect() as conn:
        pairs = conn.execute(
            select(deliveries.c.organiser, deliveries.c.provider)
            .where(deliveries.c.service_date < end, _unsettled, ~taken)
            .distinct()
            .order_by(deliveries.c.organiser, deliveries.c.provider)
        ).all()
    created: list[SettlementSummary] = []
    for organiser, provider in pairs:
        if stop is not None and stop.is_set():
            break  # the rest is settled by the next run
        summary = settle_pair(engine, organiser, provider, month)
        if summary is not None:
            log.info("settlement created: %s", summary.line())
            created.append(summary)
    return created


def settle_pair(engine: Engine, organiser: str, provider: str, month: date) -> SettlementSummary | None:
    """Build one pair's settlement for `month` in one transaction; None if it exists or has nothing."""
    try:
        with unavailable_on_outage(), already_exists(*_PERIOD_TAKEN), engine.begin() as conn:
            return _settle_locked(conn, organiser, provider, first_of_month(month))
    except AlreadyExists:
        return None  # created meanwhile by a run that did not take the lock


def _settle_locked(conn: Connection, organiser: str, provider: str, month: date) -> SettlementSummary | None:
    # hashtext collisions only make two pairs wait for each other, never settle anything twice.
    conn.execute(
        text("SELECT pg_advisory_xact_lock(:namespace, hashtext(:pair))"),
        {"namespace": _LOCK_NAMESPACE, "pair": f"{organiser}/{provider}"},
    )
    settlement_id = settlement_id_for(organiser, provider, month)
    exists_already = conn.execute(
        select(settlements.c.settlement_id).where(
            settlements.c.organiser == organiser,
            settlements.c.provider == provider,
            settlements.c.month == month,
        )
    ).first()
    if exists_already is not None:
        return None
    items = _changed_items(conn, organiser, provider, month)
    if not items:
        return None
    rows = group_rows(items)
    amount = sum((r.amount for r in rows), ZERO)
    reference = reference_for(
        month, int(conn.execute(select(settlement_reference_seq.next_value())).scalar_one())
    )
    conn.execute(
        insert(settlements).values(
            settlement_id=settlement_id,
            organiser=organiser,
            provider=provider,
            month=month,
            reference=reference,
            amount=amount,
            status="open",
        )
    )
    conn.execute(insert(settlement_rows), [{"settlement_id": settlement_id, **asdict(r)} for r in rows])
    conn.execute(
        insert(settlement_items).values(settlement_id=settlement_id, provider=provider),
        [{"event_id": i.event_id, "quantity": i.quantity, "amount": i.amount} for i in items],
    )
    conn.execute(
        update(deliveries)
        .where(
            deliveries.c.provider == bindparam("b_provider"), deliveries.c.event_id == bindparam("b_event")
        )
        .values(settled_quantity=bindparam("b_quantity"), settled_amount=bindparam("b_amount")),
        [
            {
                "b_provider": provider,
                "b_event": i.event_id,
                "b_quantity": i.settled_quantity,
                "b_amount": i.settled_amount,
            }
            for i in items
        ],
    )
    return SettlementSummary(
        settlement_id, organiser, provider, month, reference, amount, len(rows), len(items)
    )


def _changed_items(conn: Connection, organiser: str, provider: str, month: date) -> list[Item]:
    """The pair's deliveries up to the end of `month` whose payable values moved since settled,
    locked. One settled before, or delivered in an earlier month (reported late), is an
    adjustment, naming the month it was delivered in."""
    end = next_month(month)
    settled_before = exists().where(
        settlement_items.c.provider == deliveries.c.provider,
        settlement_items.c.event_id == deliveries.c.event_id,
    )
    found = conn.execute(
        select(
            deliveries.c.event_id,
            deliveries.c.service_code,
            deliveries.c.service_name,
            deliveries.c.unit,
            deliveries.c.unit_paid,
            deliveries.c.service_date,
            deliveries.c.settled_quantity,
            deliveries.c.settled_amount,
            _payable_quantity.label("payable_quantity"),
            _payable_amount.label("payable_amount"),
            settled_before.label("settled_before"),
        )
        .where(
            deliveries.c.organiser == organiser,
            deliveries.c.provider == provider,
            deliveries.c.service_date < end,
            _unsettled,
        )
        .order_by(deliveries.c.service_date, deliveries.c.event_id)
        .with_for_update(of=deliveries)
    ).all()
    return [
        Item(
            event_id=d.event_id,
            kind="adjustment" if d.settled_before or d.service_date < month else "delivery",
            # Service data is copied from the voucher or order; tolerate rows from before that.
            service_code=d.service_code or "",
            service_name=d.service_name or "",
            unit=d.unit,
            unit_price=d.unit_paid,
            quantity=d.payable_quantity - d.settled_quantity,
            amount=d.payable_amount - d.settled_amount,
            settled_quantity=d.payable_quantity,
            settled_amount=d.payable_amount,
            service_month=first_of_month(d.service_date),
        )
        for d in found
    ]


def due_month(now: datetime, settle_day: int, settle_hour: int) -> date | None:
    """The month the scheduler settles at `now` (Helsinki time): the previous one once due, else None."""
    if (now.day, now.hour) < (settle_day, settle_hour):
        return None
    return previous_month(now.date())


@contextmanager
def leadership(engine: Engine) -> Iterator[bool]:
    """Hold the scheduler's session-level advisory lock for one run: True if this process got it.

    A second scheduler (a second stack on the same database, an overlapping rollout) then idles
    instead of settling alongside; the per-pair locks keep even an overlap correct regardless.
    A lost connection releases the lock with the session.
    """
    try:
        with unavailable_on_outage():
            conn = engine.connect()
            got = bool(
                conn.execute(
                    text("SELECT pg_try_advisory_lock(:namespace, 0)"), {"namespace": _LOCK_NAMESPACE}
                ).scalar_one()
            )
            conn.commit()
    except TransientError as exc:
        log.warning("scheduler leader lock not checked: %s", exc)
        yield False
        return
    try:
        yield got
    finally:
        try:
            if got:
                with unavailable_on_outage():
                    conn.execute(
                        text("SELECT pg_advisory_unlock(:namespace, 0)"), {"namespace": _LOCK_NAMESPACE}
                    )
                    conn.commit()
        except TransientError:
            pass  # the session ends below, and the lock with it
        finally:
            conn.close()


def scheduled_run(
    engine: Engine, settings: Settings, now: datetime, stop: threading.Event | None = None
) -> list[SettlementSummary]:
    """One check of the scheduler: settle the due month, if any; an outage waits for the next check."""
    month = due_month(now, settings.settle_day, settings.settle_hour)
    if month is None:
        return []
    try:
        created = build_settlements(engine, month, now.date(), stop=stop)
    except TransientError as exc:
        # Not silent: logged, and the next check (HUB_SCHEDULER_INTERVAL_S) runs it again.
        log.warning("settling %s postponed: %s", f"{month:%Y-%m}", exc)
        return []
    if created:
        total = sum((s.amount for s in created), ZERO)
        log.info("settled %s: %d settlements, total %s", f"{month:%Y-%m}", len(created), total)
    return created
