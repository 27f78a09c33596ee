"""A data error raised by the database while applying is permanent: rejected at once, with the
reason, never retried as if the database were away."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import text, update
from sqlalchemy.engine import Engine

from psop_hub.consumers.apply import apply_batch
from psop_hub.hub.database import bad_data
from psop_hub.hub.errors import DataRejected
from psop_hub.hub.tables import orders
from tests.integration.helpers import PROVIDER_SENDER, status_of, stored
from tests.messages import ORGANISER, order_delivery, placed, uid


def test_numeric_overflow_is_translated_to_a_permanent_error(engine: Engine) -> None:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT CAST(:v AS NUMERIC(14, 2))"), {"v": "1000000000000"})
    except Exception as exc:  # the driver's error, as a handler would see it
        rejected = bad_data(exc)
    assert isinstance(rejected, DataRejected)
    assert "numeric value out of range" in rejected.reason and "22003" in rejected.reason
    assert bad_data(RuntimeError("not the database")) is None


def test_a_delivery_that_overflows_the_state_is_rejected_at_once(engine: Engine) -> None:
    number = uid("O")
    first = stored(engine, placed(number, quantity=None))
    assert apply_batch(engine, [first], 1)[first].status == "applied"  # type: ignore[union-attr]
    # An order without a cap that has run for a very long time: its total is at the column's edge.
    with engine.begin() as conn:
        conn.execute(
            update(orders)
            .where(orders.c.organiser == ORGANISER, orders.c.order_number == number)
            .values(quantity_used=Decimal("999999999999.00"))
        )
    hub_id = stored(engine, order_delivery(number, "999999"), PROVIDER_SENDER)
    outcome = apply_batch(engine, [hub_id], 1)[hub_id]
    assert not isinstance(outcome, Exception), outcome  # not handed back for a retry
    assert outcome.status == "rejected"
    row = status_of(engine, hub_id)
    assert row.status == "rejected" and row.attempts == 1
    assert "cannot hold the message's values" in row.errors[0]["message"]
    assert "22003" in row.errors[0]["message"]
