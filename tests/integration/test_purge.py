"""Retention (hub.purge): `hub purge --older-than DAYS` removes resolved old messages with their
journey, keeps every unresolved failure however old, removes an edit's chain only as a whole,
says what it removed, and is audited."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from psop_hub.adapters.replays import replay_edited
from psop_hub.consumers.apply import apply, record_failure
from psop_hub.hub import audit, purge
from psop_hub.hub.errors import InvalidInput, Waiting
from psop_hub.hub.tables import audit_log, journey, messages, orders, vouchers
from tests.integration.helpers import PROVIDER_SENDER, stored
from tests.messages import HETU, assigned, delivery, granted, placed, uid


def _age(engine: Engine, ids: list[uuid.UUID], days: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(messages)
            .where(messages.c.hub_id.in_(ids))
            .values(updated_at=func.now() - func.make_interval(0, 0, 0, days))
        )


def _exists(engine: Engine, hub_id: uuid.UUID) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(messages.c.hub_id).where(messages.c.hub_id == hub_id)).first() is not None


def test_purge_removes_resolved_old_messages_and_keeps_failures(engine: Engine) -> None:
    # Everything older than ten years is this test's own (the rest of the run is days old at most).
    number = uid("V")
    grant, assign = stored(engine, granted(number)), stored(engine, assigned(number))
    for hub_id in (grant, assign):
        apply(engine, hub_id, 1)
    failed = stored(engine, delivery(uid("NOPE"), "1"), PROVIDER_SENDER)
    with pytest.raises(Waiting):
        apply(engine, failed, 1)
    record_failure(engine, failed, 5, "its voucher never came")
    rejected = stored(engine, delivery(number, "1", unit="visit"), PROVIDER_SENDER)
    apply(engine, rejected, 1)
    edited = stored(engine, delivery(number, "1", unit="visit"), PROVIDER_SENDER)
    apply(engine, edited, 1)
    copy = replay_edited(engine, "admin", edited, {**_payload(engine, edited), "unit": "hour"}).copy_hub_id
    assert copy is not None
    apply(engine, copy, 1)
    fresh = stored(engine, granted(uid("V")))
    apply(engine, fresh, 1)
    old = [grant, assign, failed, rejected, edited, copy]
    _age(engine, old, 4000)

    with pytest.raises(InvalidInput):
        purge.purge(engine, "ops", 0)
    dry = purge.purge(engine, "ops", 3650, dry_run=True)
    assert dry.removed == {"applied": 3, "replaced": 1} and all(_exists(engine, h) for h in old)
    report = purge.purge(engine, "ops", 3650)
    assert report.removed == {"applied": 3, "replaced": 1}
    assert report.kept == {"failed": 1, "rejected": 1}
    assert report.journey_steps == 4 + 4 + 5 + 5  # no queued steps: applied in-process, unpublished
    assert [_exists(engine, h) for h in old] == [False, False, True, True, False, False]
    assert _exists(engine, fresh)
    with engine.connect() as conn:
        steps = conn.execute(select(func.count()).where(journey.c.hub_id.in_(old[:2]))).scalar_one()
        kept_steps = conn.execute(select(func.count()).where(journey.c.hub_id == failed)).scalar_one()
        row = conn.execute(
            select(audit_log).where(audit_log.c.action == audit.PURGE).order_by(audit_log.c.id.desc())
        ).first()
    assert steps == 0 and kept_steps >= 3
    assert row is not None and row.actor == "ops" and row.detail["removed"] == {"applied": 3, "replaced": 1}
    assert purge.purge(engine, "ops", 3650).total == 0  # nothing left to remove; the failures stay


def _payload(engine: Engine, hub_id: uuid.UUID) -> dict[str, object]:
    with engine.connect() as conn:
        return dict(conn.execute(select(messages.c.payload).where(messages.c.hub_id == hub_id)).scalar_one())


def test_purge_masks_the_client_of_services_that_ended_before_the_cutoff(engine: Engine) -> None:
    # Service dates are moved back in the rows themselves: a voucher that ended eleven years ago,
    # one revoked then (its valid_to still ahead), one still running; an order ended then, one
    # open-ended from then on.
    ended_v, revoked_v, running_v = uid("V"), uid("V"), uid("V")
    ended_o, open_o = uid("O"), uid("O")
    for number in (ended_v, revoked_v, running_v):
        apply(engine, stored(engine, granted(number)), 1)
    for number in (ended_o, open_o):
        apply(engine, stored(engine, placed(number)), 1)
    long_ago = func.current_date() - 4000
    with engine.begin() as conn:
        conn.execute(
            update(vouchers)
            .where(vouchers.c.voucher_number == ended_v)
            .values(valid_from=long_ago - 30, valid_to=long_ago)
        )
        conn.execute(
            update(vouchers).where(vouchers.c.voucher_number == revoked_v).values(effective_end=long_ago)
        )
        conn.execute(update(orders).where(orders.c.order_number == ended_o).values(end_date=long_ago))
        conn.execute(
            update(orders).where(orders.c.order_number == open_o).values(start_date=long_ago, end_date=None)
        )
    mine = [ended_v, revoked_v, running_v, ended_o, open_o]
    before = _state(engine, mine)

    dry = purge.purge(engine, "ops", 3650, dry_run=True)
    assert dry.erased["vouchers"] >= 2 and dry.erased["orders"] >= 1, dry
    assert _state(engine, mine) == before  # a dry run only counts
    report = purge.purge(engine, "ops", 3650)
    assert report.erased == dry.erased
    after = _state(engine, mine)
    masked = HETU[:6] + "-****"
    assert {n: after[n]["client_hetu"] for n in before} == {
        ended_v: masked,
        revoked_v: masked,
        running_v: HETU,
        ended_o: masked,
        open_o: HETU,
    }
    # Only whose it was changes: the amounts, quantities, dates and status stay.
    for number, row in before.items():
        assert {**after[number], "client_hetu": row["client_hetu"]} == row, number
    with engine.connect() as conn:
        audited = conn.execute(
            select(audit_log).where(audit_log.c.action == audit.PURGE).order_by(audit_log.c.id.desc())
        ).first()
    assert audited is not None and audited.detail["clients_masked"] == report.erased
    assert purge.purge(engine, "ops", 3650).erased == {"vouchers": 0, "orders": 0}  # masked once


def _state(engine: Engine, numbers: list[str]) -> dict[str, dict[str, object]]:
    """These vouchers and orders by number, every column."""
    with engine.connect() as conn:
        found = [
            r._asdict() for r in conn.execute(select(vouchers).where(vouchers.c.voucher_number.in_(numbers)))
        ]
        state = {r["voucher_number"]: r for r in found}
        for r in conn.execute(select(orders).where(orders.c.order_number.in_(numbers))):
            state[r.order_number] = r._asdict()
    return state
