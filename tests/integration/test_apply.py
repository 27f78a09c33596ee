"""Applying messages: the inbox makes redelivery harmless; rules reject; the voucher row lock
keeps concurrent deliveries of one voucher right."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from psop_hub.consumers.apply import apply, record_failure
from psop_hub.hub.errors import Waiting
from psop_hub.hub.store import STATE_CONSUMER as CONSUMER
from psop_hub.hub.tables import deliveries, inbox, journey
from tests.integration.helpers import PROVIDER_SENDER, status_of, stored, voucher_row
from tests.messages import OTHER_PROVIDER, assigned, delivery, granted, uid


def ready_voucher(engine: Engine, quantity: str = "100", price: str | None = "30.00") -> str:
    """A granted and assigned voucher; returns its number."""
    number = uid("V")
    for raw in (granted(number, quantity=quantity), assigned(number, price=price)):
        assert apply(engine, stored(engine, raw), 1).status == "applied"
    return number


def test_the_same_message_delivered_twice_applies_once(engine: Engine) -> None:
    number = ready_voucher(engine)
    hub_id = stored(engine, delivery(number, "2.5"), PROVIDER_SENDER)
    first = apply(engine, hub_id, 1)
    second = apply(engine, hub_id, 2)
    assert (first.status, first.duplicate) == ("applied", False)
    assert second.duplicate
    assert voucher_row(engine, number).quantity_used == Decimal("2.5")
    with engine.connect() as conn:
        assert (
            conn.execute(select(func.count()).select_from(inbox).where(inbox.c.hub_id == hub_id)).scalar()
            == 1
        )
        steps = conn.execute(
            select(journey.c.step).where(journey.c.hub_id == hub_id).order_by(journey.c.id)
        ).all()
    assert [s.step for s in steps].count("applied") == 1
    assert status_of(engine, hub_id).status == "applied"


def test_concurrent_redeliveries_of_one_message_apply_once(engine: Engine) -> None:
    number = ready_voucher(engine)
    hub_id = stored(engine, delivery(number, "1"), PROVIDER_SENDER)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: apply(engine, hub_id, 1), range(8)))
    assert sum(not r.duplicate for r in results) == 1
    assert voucher_row(engine, number).quantity_used == Decimal("1")


def test_shares_use_min_of_price_and_unit_value(engine: Engine) -> None:
    number = ready_voucher(engine, price="30.00")  # unit value 25.00
    hub_id = stored(engine, delivery(number, "2.5"), PROVIDER_SENDER)
    apply(engine, hub_id, 1)
    with engine.connect() as conn:
        row = conn.execute(select(deliveries).where(deliveries.c.hub_id == hub_id)).one()
    assert (row.price, row.unit_paid) == (Decimal("30.00"), Decimal("25.00"))
    assert (row.voucher_share, row.client_share) == (Decimal("62.50"), Decimal("12.50"))


@pytest.mark.parametrize(
    ("change", "rule", "field"),
    [
        ({"provider": OTHER_PROVIDER}, "assigned_provider_only", "payload.provider"),
        ({"service_date": "2028-01-01"}, "inside_validity", "payload.service_date"),
        ({"unit": "visit"}, "voucher_unit", "payload.unit"),
        ({"quantity": "100.5"}, "within_quantity", "payload.quantity"),
    ],
)
def test_broken_rule_rejects_and_changes_nothing(
    engine: Engine, change: dict[str, str], rule: str, field: str
) -> None:
    number = ready_voucher(engine)
    raw = delivery(number, **change)
    sender = PROVIDER_SENDER
    if "provider" in change:
        from psop_hub.hub.senders import Sender

        sender = Sender("other-provider", "provider", (), OTHER_PROVIDER)
    hub_id = stored(engine, raw, sender)
    result = apply(engine, hub_id, 1)
    assert result.status == "rejected"
    assert rule in result.detail
    row = status_of(engine, hub_id)
    assert row.status == "rejected"
    assert row.errors[0]["field"] == field
    assert voucher_row(engine, number).quantity_used == 0
    with engine.connect() as conn:
        assert conn.execute(select(deliveries).where(deliveries.c.hub_id == hub_id)).first() is None


def test_delivery_before_its_voucher_waits_then_applies(engine: Engine) -> None:
    number = uid("V")
    hub_id = stored(engine, delivery(number, "1"), PROVIDER_SENDER)
    with pytest.raises(Waiting):
        apply(engine, hub_id, 1)
    with engine.connect() as conn:  # nothing of the attempt was kept, not even the inbox row
        assert conn.execute(select(inbox).where(inbox.c.hub_id == hub_id)).first() is None
    for raw in (granted(number), assigned(number)):
        apply(engine, stored(engine, raw), 1)
    assert apply(engine, hub_id, 2).status == "applied"


def test_failure_is_recorded_once_and_blocks_later_redelivery(engine: Engine) -> None:
    hub_id = stored(engine, delivery(uid("V"), "1"), PROVIDER_SENDER)
    record_failure(engine, hub_id, 5, "voucher never arrived")
    row = status_of(engine, hub_id)
    assert (row.status, row.attempts) == ("failed", 5)
    assert apply(engine, hub_id, 6).duplicate
    with engine.connect() as conn:
        outcome = conn.execute(
            select(inbox.c.outcome).where(inbox.c.consumer == CONSUMER, inbox.c.hub_id == hub_id)
        ).scalar()
    assert outcome == "failed"


def test_two_workers_on_one_voucher_never_go_over_quantity(engine: Engine) -> None:
    """60 one-hour deliveries against a 40-hour voucher, applied from 2 x 8 threads at once."""
    number = ready_voucher(engine, quantity="40")
    hub_ids = [stored(engine, delivery(number, "1"), PROVIDER_SENDER) for _ in range(60)]
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda h: apply(engine, h, 1), hub_ids))
    statuses = [r.status for r in results]
    assert statuses.count("applied") == 40
    assert statuses.count("rejected") == 20
    v = voucher_row(engine, number)
    assert v.quantity_used == Decimal("40")
    with engine.connect() as conn:
        booked = conn.execute(
            select(func.sum(deliveries.c.quantity)).where(deliveries.c.voucher_number == number)
        ).scalar()
    assert booked == Decimal("40")
