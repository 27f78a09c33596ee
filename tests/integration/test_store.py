"""The message store: durable accept, duplicates, conflicts, journey."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from psop_hub.adapters.intake import submit
from psop_hub.hub import store
from psop_hub.hub.errors import ConflictError, NotAllowed
from psop_hub.hub.senders import Sender
from psop_hub.mappings.canonical import parse_message
from tests.integration.helpers import PROVIDER_SENDER, SYSTEM, stored
from tests.messages import OTHER_ORGANISER, OTHER_PROVIDER, delivery, granted, uid


def test_accept_stores_message_with_received_and_validated_steps(engine: Engine) -> None:
    raw = granted(uid("V"))
    hub_id = stored(engine, raw)
    found = store.describe(engine, hub_id)
    assert found is not None
    assert found["status"] == "accepted"
    assert found["message_id"] == raw["message_id"]
    assert found["sender"] == SYSTEM.name
    assert [s["step"] for s in found["journey"]] == ["received", "validated"]


def test_same_message_twice_is_a_duplicate_with_the_first_hub_id(engine: Engine) -> None:
    raw = granted(uid("V"))
    first = submit(engine, SYSTEM, parse_message(raw), "rest")
    again = submit(engine, SYSTEM, parse_message(raw), "rest")
    assert not first.duplicate
    assert again.duplicate
    assert again.hub_id == first.hub_id


def test_same_message_id_with_other_payload_is_a_conflict(engine: Engine) -> None:
    raw = granted(uid("V"))
    first = stored(engine, raw)
    changed = {**raw, "payload": {**raw["payload"], "quantity": "99"}}
    with pytest.raises(ConflictError) as caught:
        stored(engine, changed)
    assert caught.value.hub_id == str(first)
    # the first message is unchanged
    found = store.describe(engine, first)
    assert found is not None and found["status"] == "accepted"


def test_same_message_id_from_another_sender_is_a_new_message(engine: Engine) -> None:
    raw = granted(uid("V"))
    other = Sender("other-system", "system", SYSTEM.organisers, None)
    assert stored(engine, raw) != stored(engine, raw, other)


def test_system_may_not_send_for_another_organiser(engine: Engine) -> None:
    raw = granted(uid("V"), organiser=OTHER_ORGANISER)
    with pytest.raises(NotAllowed):
        stored(engine, raw)


def test_provider_may_only_report_as_itself(engine: Engine) -> None:
    with pytest.raises(NotAllowed):
        stored(engine, delivery(uid("V"), provider=OTHER_PROVIDER), PROVIDER_SENDER)
    with pytest.raises(NotAllowed):
        stored(engine, granted(uid("V")), PROVIDER_SENDER)


def test_admin_may_not_send(engine: Engine) -> None:
    with pytest.raises(NotAllowed):
        stored(engine, granted(uid("V")), Sender("root", "admin", (), None))
