"""Messages waiting for their voucher or order are applied in the order they were received when it
arrives: a later delivery never overtakes an earlier one that waits, and what waits is released
together, in order. (The e2e twin, with real workers and real pauses, is in tests/e2e/test_domain.py.)"""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from psop_hub.consumers.apply import Result, apply, apply_batch, record_retry, waiting_for
from psop_hub.hub.errors import Waiting
from tests.integration.helpers import PROVIDER_SENDER, status_of, stored
from tests.messages import ORGANISER, assigned, delivery, granted, order_delivery, placed, uid


def wait_once(engine: Engine, hub_id: object, attempt: int, match: str = "") -> None:
    """Apply a message that must wait, and record its retry as the worker does."""
    with pytest.raises(Waiting, match=match) as caught:
        apply(engine, hub_id, attempt)  # type: ignore[arg-type]
    record_retry(engine, hub_id, attempt, str(caught.value), "retry", waiting=True)  # type: ignore[arg-type]


def test_a_later_delivery_does_not_overtake_an_earlier_one_waiting_for_the_order(engine: Engine) -> None:
    number = uid("O")
    first = stored(engine, order_delivery(number, "3"), PROVIDER_SENDER)
    second = stored(engine, order_delivery(number, "2"), PROVIDER_SENDER)
    wait_once(engine, first, 1, "has not arrived yet")
    wait_once(engine, second, 1, "has not arrived yet")

    arrived = apply(engine, stored(engine, placed(number, quantity="4")), 1)
    assert arrived.releases == (ORGANISER, number)
    assert [h for h, _ in waiting_for(engine, [arrived.releases])] == [first, second]

    # The later delivery's own retry comes first (its pause was shorter): it waits behind.
    wait_once(engine, second, 2, "an earlier delivery on order")
    assert status_of(engine, second).errors[0]["waiting"] is True

    # Released together (listed in any order), applied in the order received.
    results = apply_batch(engine, [second, first], {first: 2, second: 3})
    assert isinstance(results[first], Result) and results[first].status == "applied"
    assert isinstance(results[second], Result) and results[second].status == "rejected"
    assert status_of(engine, second).errors[0]["rule"] == "within_quantity"


def test_deliveries_of_one_file_batch_are_applied_in_the_order_received(engine: Engine) -> None:
    number = uid("V")
    for raw in (granted(number, quantity="5"), assigned(number)):
        apply(engine, stored(engine, raw), 1)
    ids = [stored(engine, delivery(number, q), PROVIDER_SENDER) for q in ("2", "3", "1")]
    results = apply_batch(engine, list(reversed(ids)), 1)
    assert [results[h].status for h in ids] == ["applied", "applied", "rejected"]  # type: ignore[union-attr]


def test_a_delivery_retried_after_an_error_holds_nothing_up(engine: Engine) -> None:
    number = uid("O")
    apply(engine, stored(engine, placed(number, quantity="10")), 1)
    crashed = stored(engine, order_delivery(number, "1"), PROVIDER_SENDER)
    # As the worker records an unexpected error: retrying, but not waiting for anything.
    record_retry(engine, crashed, 1, "RuntimeError while applying (see the worker log)", "retry")
    later = stored(engine, order_delivery(number, "2"), PROVIDER_SENDER)
    assert apply(engine, later, 1).status == "applied"
    assert waiting_for(engine, [(ORGANISER, number)]) == []
