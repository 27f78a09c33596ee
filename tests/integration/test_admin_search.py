"""The admin search and the one-message view (hub.search) against the real database: every
filter, `q` on each key, a stable paged order with a total, counts per status, HETUs masked
unless revealed, and every read of a message audited."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import any_, literal, select
from sqlalchemy.engine import Engine

from psop_hub.consumers.apply import apply
from psop_hub.hub import audit, search
from psop_hub.hub.errors import NotFound, ValidationFailed
from psop_hub.hub.tables import audit_log
from tests.integration.helpers import PROVIDER_SENDER, stored
from tests.messages import HETU, ORGANISER, PROVIDER, assigned, delivery, granted, uid


def _now(engine: Engine) -> datetime:
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT clock_timestamp()").scalar_one()


def test_filters_q_paging_and_counts(engine: Engine) -> None:
    start = _now(engine)
    number = uid("V")
    grant = granted(number)
    grant["correlation_id"] = uid("corr")
    g = stored(engine, grant)
    a = stored(engine, assigned(number))
    deliveries = [stored(engine, delivery(number, "1"), PROVIDER_SENDER) for _ in range(5)]
    late = delivery(uid("NOPE"), "1")
    waiting = stored(engine, late, PROVIDER_SENDER)
    for hub_id in (g, a, *deliveries):
        apply(engine, hub_id, 1)
    since = search.MessageFilter(since=start)

    everything = search.search_messages(engine, since, limit=100)
    assert everything.total == 8
    ids = [m.hub_id for m in everything.messages]
    assert set(ids) == {g, a, *deliveries, waiting}
    assert [m.received_at for m in everything.messages] == sorted(
        (m.received_at for m in everything.messages), reverse=True
    )
    # pages of 3 cover the same order, nothing twice, nothing left out
    paged = [m.hub_id for o in (0, 3, 6) for m in search.search_messages(engine, since, 3, o).messages]
    assert paged == ids

    counts = search.status_counts(engine, search.MessageFilter(since=start, statuses=("applied",)))
    assert counts["applied"] == 7 and counts["accepted"] == 1 and counts["failed"] == 0
    assert set(counts) == {"accepted", "applied", "retrying", "rejected", "superseded", "failed", "replaced"}

    def found(**kw: object) -> set[object]:
        flt = search.MessageFilter.from_json({"since": start.isoformat(), **kw})
        return {m.hub_id for m in search.search_messages(engine, flt, limit=100).messages}

    assert found(status="accepted") == {waiting}
    assert found(status=["applied", "accepted"]) == {g, a, *deliveries, waiting}
    assert found(type="voucher.granted") == {g}
    assert found(sender=PROVIDER_SENDER.name) == {*deliveries, waiting}
    assert found(organiser=ORGANISER) == {g, a, *deliveries, waiting}
    assert found(provider=PROVIDER) == {a, *deliveries, waiting}
    assert found(q=number) == {g, a, *deliveries}  # voucher number
    assert found(q=grant["correlation_id"]) == {g}
    assert found(q=grant["message_id"]) == {g}
    assert found(q=late["payload"]["event_id"]) == {waiting}
    assert found(q=str(waiting)) == {waiting}
    assert found(until=start.isoformat()) == set()
    assert found(since=(start + timedelta(days=1)).isoformat()) == set()


def test_a_bad_filter_names_every_field(engine: Engine) -> None:
    with pytest.raises(ValidationFailed) as caught:
        search.MessageFilter.from_json({"status": "lost", "since": "yesterday", "colour": "red"})
    assert {e.field for e in caught.value.errors} == {"status", "since", "colour"}
    with pytest.raises(ValidationFailed):
        search.MessageFilter.from_json({"until": "2026-11-02T08:15:00"})  # no offset
    # a `+` left unencoded in a query string arrives as a space
    flt = search.MessageFilter.from_json({"since": "2026-11-02T08:15:00 02:00"})
    assert flt.since == datetime(2026, 11, 2, 6, 15, tzinfo=UTC)
    assert search.MessageFilter.from_json(flt.to_json()) == flt


def test_show_masks_hetus_unless_revealed_and_audits_every_read(engine: Engine) -> None:
    number = uid("V")
    hub_id = stored(engine, granted(number))
    apply(engine, hub_id, 1)
    masked = search.show_message(engine, "admin-anna", hub_id, reason="ticket 42")
    body = masked.to_json()
    assert HETU not in str(body)
    assert body["payload"]["client"]["hetu"] == HETU[:6] + "-****"
    assert body["status"] == "applied" and body["revealed"] is False
    assert [s["step"] for s in body["journey"]][:2] == ["received", "validated"]
    assert body["journey"][-1]["step"] == "applied"
    revealed = search.show_message(engine, "admin-anna", hub_id, reveal=True, reason="client asked")
    assert revealed.to_json()["payload"]["client"]["hetu"] == HETU
    with engine.connect() as conn:
        rows = conn.execute(
            select(audit_log).where(literal(hub_id) == any_(audit_log.c.hub_ids)).order_by(audit_log.c.id)
        ).all()
    assert [(r.actor, r.action, r.reason, r.detail["revealed"]) for r in rows] == [
        ("admin-anna", audit.MESSAGE_READ, "ticket 42", False),
        ("admin-anna", audit.MESSAGE_READ, "client asked", True),
    ]
    with pytest.raises(NotFound):
        search.show_message(engine, "admin-anna", uuid.uuid4())


def test_a_confirm_recorded_after_the_workers_steps_is_shown_before_them(engine: Engine) -> None:
    from sqlalchemy import insert

    from psop_hub.hub.store import journey_of
    from psop_hub.hub.tables import journey

    hub_id = uuid.uuid4()
    names = ["received", "validated", "attempt", "applied", "queued", "replayed", "attempt", "queued"]
    start = _now(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(journey),
            [
                {"hub_id": hub_id, "step": step, "detail": "", "at": start + timedelta(milliseconds=i)}
                for i, step in enumerate(names)
            ],
        )
        steps = journey_of(conn, hub_id)
    assert [s.step for s in steps] == [
        "received",
        "validated",
        "queued",
        "attempt",
        "applied",
        "replayed",
        "queued",
        "attempt",
    ]
    assert [s.at for s in steps] == sorted(s.at for s in steps)


def test_counts_stop_at_the_cap_and_say_so(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search, "COUNT_CAP", 3)
    start = _now(engine)
    for _ in range(5):
        stored(engine, granted(uid("V")))
    flt = search.MessageFilter(since=start)
    page = search.search_messages(engine, flt, limit=2, counts=True)
    assert (page.total, page.total_exact, len(page.messages)) == (3, False, 2)
    assert page.counts is not None and page.counts["accepted"] == 3 and page.counts["applied"] == 0
    assert search.status_counts(engine, flt)["accepted"] == 3
    exact = search.search_messages(engine, search.MessageFilter(since=start, statuses=("applied",)))
    assert (exact.total, exact.total_exact) == (0, True)
