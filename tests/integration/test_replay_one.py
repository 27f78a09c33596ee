"""Replaying one message (hub.replay) and an edited copy (adapters.replays) against the real
database: guarded by the status, exactly once through the inbox, idempotent, audited; an
invalid edit refused with every error, a valid one applied once with the original `replaced`."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import any_, literal, select
from sqlalchemy.engine import Engine

from psop_hub.adapters.replays import replay_edited
from psop_hub.consumers.apply import apply, record_failure
from psop_hub.hub import audit, replay, search
from psop_hub.hub.errors import ConflictError, NotAllowed, NotFound, ValidationFailed, Waiting
from psop_hub.hub.publishing import Publisher
from psop_hub.hub.settings import Settings
from psop_hub.hub.store import journey_of
from psop_hub.hub.tables import audit_log, inbox, journey, outbox
from psop_hub.hub.topology import make_broker
from tests.integration.helpers import PROVIDER_SENDER, status_of, stored, voucher_row
from tests.messages import OTHER_PROVIDER, assigned, delivery, granted, uid


def _audit(engine: Engine, hub_id: uuid.UUID) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(audit_log).where(literal(hub_id) == any_(audit_log.c.hub_ids)).order_by(audit_log.c.id)
        ).all()
    return [(r.actor, r.action, r.detail.get("outcome", "")) for r in rows]


def _steps(engine: Engine, hub_id: uuid.UUID) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(journey.c.step).where(journey.c.hub_id == hub_id).order_by(journey.c.at, journey.c.id)
            ).scalars()
        )


def _failed_delivery(engine: Engine, number: str) -> uuid.UUID:
    """A delivery whose voucher never came, given up on as the worker does after its attempts."""
    hub_id = stored(engine, delivery(number, "2"), PROVIDER_SENDER)
    with pytest.raises(Waiting):
        apply(engine, hub_id, 1)
    record_failure(engine, hub_id, 5, f"voucher {number} has not arrived yet")
    assert status_of(engine, hub_id).status == "failed"
    return hub_id


def test_replay_of_a_failed_message_applies_it_once_and_says_so_after(engine: Engine) -> None:
    number = uid("V")
    hub_id = _failed_delivery(engine, number)
    result = replay.replay_message(engine, "admin-anna", hub_id, "voucher sent late")
    assert (result.outcome, result.status) == ("queued", "accepted")
    with engine.connect() as conn:
        assert conn.execute(select(inbox).where(inbox.c.hub_id == hub_id)).first() is None
        assert conn.execute(select(outbox).where(outbox.c.hub_id == hub_id)).first() is not None
    # still waiting for its voucher: a second replay changes nothing (it is not failed any more)
    again = replay.replay_message(engine, "admin-anna", hub_id, "twice")
    assert again.outcome == "skipped" and "accepted" in again.detail
    for raw in (granted(number), assigned(number)):
        apply(engine, stored(engine, raw), 1)
    assert apply(engine, hub_id, 1).status == "applied"
    assert apply(engine, hub_id, 1).duplicate  # a redelivery of the old AMQP copy: nothing
    assert voucher_row(engine, number).quantity_used == Decimal("2.00")
    after = replay.replay_message(engine, "admin-bob", hub_id, "once more")
    assert (after.outcome, after.status) == ("skipped", "applied")
    assert after.detail.startswith("already applied")
    assert voucher_row(engine, number).quantity_used == Decimal("2.00")
    steps = _steps(engine, hub_id)
    assert steps.count("replayed") == 1 and steps[-1] == "applied" and "failed" in steps
    detail = search.show_message(engine, "admin-anna", hub_id).to_json()
    replayed = [s for s in detail["journey"] if s["step"] == "replayed"]
    assert replayed[0]["detail"] == "by admin-anna: voucher sent late"
    assert _audit(engine, hub_id)[:3] == [
        ("admin-anna", audit.MESSAGE_REPLAY, "queued"),
        ("admin-anna", audit.MESSAGE_REPLAY, "skipped"),
        ("admin-bob", audit.MESSAGE_REPLAY, "skipped"),
    ]
    with pytest.raises(NotFound):
        replay.replay_message(engine, "admin-anna", uuid.uuid4())


def test_edited_replay_refuses_an_invalid_edit_and_applies_a_valid_one_once(engine: Engine) -> None:
    number = uid("V")
    for raw in (granted(number, quantity="10"), assigned(number)):
        apply(engine, stored(engine, raw), 1)
    wrong = delivery(number, "3", unit="visit")
    hub_id = stored(engine, wrong, PROVIDER_SENDER)
    assert apply(engine, hub_id, 1).status == "rejected"

    bad = {**wrong["payload"], "quantity": "-1", "service_date": "2026-13-40", "unit": "hour"}
    with pytest.raises(ValidationFailed) as caught:
        replay_edited(engine, "admin-anna", hub_id, bad, "fix the unit")
    assert {e.field for e in caught.value.errors} == {"payload.quantity", "payload.service_date"}
    with pytest.raises(NotAllowed):
        replay_edited(engine, "admin-anna", hub_id, {**wrong["payload"], "provider": OTHER_PROVIDER})
    original = status_of(engine, hub_id)
    assert original.status == "rejected" and original.payload == wrong["payload"]

    fixed = {**wrong["payload"], "unit": "hour"}
    result = replay_edited(engine, "admin-anna", hub_id, fixed, "the provider sent visits for hours")
    assert result.outcome == "queued" and result.status == "replaced"
    copy_id = result.copy_hub_id
    assert copy_id is not None
    copy = status_of(engine, copy_id)
    assert copy.replay_of == hub_id and copy.payload == fixed and copy.sender == PROVIDER_SENDER.name
    assert copy.message_id.startswith(wrong["message_id"]) and copy.channel == "replay"
    assert apply(engine, copy_id, 1).status == "applied"
    assert voucher_row(engine, number).quantity_used == Decimal("3.00")

    original = status_of(engine, hub_id)
    assert original.status == "replaced" and original.payload == wrong["payload"]
    shown = search.show_message(engine, "admin-anna", hub_id).to_json()
    assert shown["replaced_by"] == [str(copy_id)]
    assert shown["journey"][-1]["step"] == "replaced" and str(copy_id) in shown["journey"][-1]["detail"]
    assert search.show_message(engine, "admin-anna", copy_id).to_json()["replay_of"] == str(hub_id)
    assert _steps(engine, copy_id)[:4] == ["received", "validated", "edited", "attempt"]

    # replaced: neither replayed again nor edited again; the copy is applied once
    assert replay.replay_message(engine, "admin-anna", hub_id).outcome == "skipped"
    with pytest.raises(ConflictError):
        replay_edited(engine, "admin-anna", hub_id, fixed)
    assert replay.replay_message(engine, "admin-anna", copy_id).detail.startswith("already applied")
    assert voucher_row(engine, number).quantity_used == Decimal("3.00")
    with engine.connect() as conn:
        edit = conn.execute(
            select(audit_log).where(
                audit_log.c.action == audit.MESSAGE_REPLAY_EDITED,
                literal(hub_id) == any_(audit_log.c.hub_ids),
            )
        ).one()
    assert edit.detail["before"]["unit"] == "visit" and edit.detail["after"]["unit"] == "hour"
    assert edit.hub_ids == [hub_id, copy_id] and edit.reason == "the provider sent visits for hours"


def test_a_replayed_message_is_queued_after_its_replay(engine: Engine, settings: Settings) -> None:
    mine = settings.model_copy(update={"queue_name": uid("rq")})
    publisher = Publisher(mine, engine, make_broker(mine))
    try:
        hub_id = _failed_delivery(engine, uid("V"))
        publisher.publish([hub_id])  # as the API does when it takes a message: queued, attempt, failed
        assert replay.replay_message(engine, "admin", hub_id, "again", publisher).outcome == "queued"
        with engine.connect() as conn:
            steps = journey_of(conn, hub_id)
            stored_order = list(
                conn.execute(
                    select(journey.c.step)
                    .where(journey.c.hub_id == hub_id)
                    .order_by(journey.c.at, journey.c.id)
                ).scalars()
            )
        names = [s.step for s in steps]
        assert names[-3:] == ["failed", "replayed", "queued"] and stored_order == names
        assert steps[-1].at > steps[-2].at
    finally:
        publisher.broker.close()
