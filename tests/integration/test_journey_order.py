"""The journey is causal: a worker may apply a message before its publish confirm is recorded,
and `queued` still comes before the worker's steps, in order and in time."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from psop_hub.consumers.apply import apply
from psop_hub.hub import store
from tests.integration.helpers import stored
from tests.messages import granted, uid


def test_a_confirm_recorded_after_the_apply_is_still_queued_before_it(engine: Engine) -> None:
    hub_id = stored(engine, granted(uid("V")))
    assert apply(engine, hub_id, 1).status == "applied"  # the worker was faster than the confirm
    with engine.begin() as conn:
        store.mark_published(conn, [hub_id])
    described = store.describe(engine, hub_id)
    assert described is not None
    steps = described["journey"]
    assert [s["step"] for s in steps] == ["received", "validated", "queued", "attempt", "applied"]
    times = [s["at"] for s in steps]
    assert times == sorted(times)


def test_a_confirm_recorded_before_the_apply_keeps_its_own_time(engine: Engine) -> None:
    hub_id = stored(engine, granted(uid("V")))
    with engine.begin() as conn:
        store.mark_published(conn, [hub_id])
    assert apply(engine, hub_id, 1).status == "applied"
    described = store.describe(engine, hub_id)
    assert described is not None
    assert [s["step"] for s in described["journey"]] == [
        "received",
        "validated",
        "queued",
        "attempt",
        "applied",
    ]
