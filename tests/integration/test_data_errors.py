"""A data error raised by the database while applying is permanent: rejected at once, with the
reason, never retried as if the database were away."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest
from sqlalchemy import text, update
from sqlalchemy.engine import Engine

from psop_hub.consumers.apply import apply_batch
from psop_hub.consumers.worker import _give_up_or_retry
from psop_hub.hub.database import bad_data, make_engine
from psop_hub.hub.errors import DataRejected
from psop_hub.hub.settings import Settings
from psop_hub.hub.tables import orders
from tests.integration.helpers import PROVIDER_SENDER, status_of, stored
from tests.messages import ORGANISER, granted, order_delivery, placed, uid


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


# The same voucher, inserted and not yet committed by another transaction: the grant waits on it.
HELD_GRANT = """
INSERT INTO vouchers (organiser, voucher_number, status, version, decision_date, client_hetu,
                      home_municipality, service_code, service_name, unit, unit_value, quantity,
                      valid_from, valid_to)
VALUES (:o, :n, 'granted', 1, '2026-01-01', '010101-123N', '091', 'S', 'S', 'h', 1, 1,
        '2026-01-01', '2026-12-31')
"""


def test_a_lock_wait_past_the_statement_timeout_is_retried_with_a_warning_not_a_traceback(
    engine: Engine, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    number = uid("V")
    hub_id = stored(engine, granted(number))
    # The voucher's row is locked by another transaction for longer than the statement may wait.
    timed = make_engine(settings.model_copy(update={"statement_timeout_ms": 300}))
    with engine.connect() as holder:
        holder.execute(
            text(HELD_GRANT),
            {"o": ORGANISER, "n": number},
        )
        outcome = apply_batch(timed, [hub_id], 1)[hub_id]
        holder.rollback()
    timed.dispose()
    assert isinstance(outcome, Exception)  # handed back to be retried, nothing recorded
    with caplog.at_level(logging.WARNING, logger="psop_hub.consumers.worker"):
        _give_up_or_retry(engine, settings, str(hub_id), 1, outcome)
    [record] = [r for r in caplog.records if r.name == "psop_hub.consumers.worker"]
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert record.getMessage() == f"QueryCanceled applying {hub_id} (attempt 1): tried again later"
    assert status_of(engine, hub_id).status == "retrying"
