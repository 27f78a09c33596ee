"""Unique violations are told apart once, in hub.database, from real PostgreSQL errors."""

from __future__ import annotations

import threading
import time
from datetime import date

import pytest
from sqlalchemy import insert, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from psop_hub.consumers.settlement import settle_pair, settlement_id_for
from psop_hub.hub.database import already_exists, unique_violation
from psop_hub.hub.errors import AlreadyExists, HubError
from psop_hub.hub.senders import add_client
from psop_hub.hub.tables import parties, settlements
from tests.integration.settling import add_delivery, business_id, settlements_of
from tests.messages import uid


def _party(engine: Engine, business_id: str, name: str | None = "Hoiva Oy") -> None:
    with engine.begin() as conn:
        conn.execute(insert(parties).values(business_id=business_id, name=name))


def test_unique_violation_names_the_key_and_nothing_else(engine: Engine) -> None:
    bid = business_id()
    _party(engine, bid)
    with pytest.raises(IntegrityError) as duplicate:
        _party(engine, bid)
    assert unique_violation(duplicate.value) == "pk_parties"
    assert unique_violation(duplicate.value.orig) == "pk_parties"  # the driver's error too
    with pytest.raises(IntegrityError) as not_null:
        _party(engine, business_id(), name=None)
    assert unique_violation(not_null.value) is None
    assert unique_violation(ValueError("pk_parties")) is None


def test_already_exists_translates_only_the_keys_it_is_given(engine: Engine) -> None:
    bid = business_id()
    _party(engine, bid)
    with pytest.raises(AlreadyExists) as caught, already_exists("pk_parties", reason="party exists"):
        _party(engine, bid)
    assert (str(caught.value), caught.value.constraint) == ("party exists", "pk_parties")
    assert isinstance(caught.value.__cause__, IntegrityError)
    with pytest.raises(AlreadyExists, match=r"a row with the same key \(pk_parties\) exists already"):
        with already_exists("pk_parties"):
            _party(engine, bid)
    with pytest.raises(IntegrityError), already_exists("pk_clients"):
        _party(engine, bid)
    with pytest.raises(IntegrityError), already_exists("pk_parties"):
        _party(engine, business_id(), name=None)


def test_a_second_client_of_one_name_is_refused_with_the_same_words(engine: Engine) -> None:
    name = uid("erp")
    add_client(engine, name, "system", business_id(), None)
    with pytest.raises(HubError) as caught:
        add_client(engine, name, "system", business_id(), None)
    assert isinstance(caught.value, AlreadyExists)
    assert str(caught.value) == f"a client named {name!r} exists already"


def test_a_settlement_created_meanwhile_by_a_run_without_the_lock_is_not_an_error(engine: Engine) -> None:
    organiser, provider = business_id(), business_id()
    month = date(2026, 2, 1)
    add_delivery(engine, organiser, provider, date(2026, 2, 10), "2", "30.00")
    # Another run that skipped the advisory lock inserts the pair's settlement and commits only
    # once settle_pair (which cannot see it yet) is waiting on the unique key.
    other = engine.connect()
    transaction = other.begin()
    other.execute(
        insert(settlements).values(
            settlement_id=settlement_id_for(organiser, provider, month),
            organiser=organiser,
            provider=provider,
            month=month,
            reference=uid("R")[:20],
            amount=0,
            status="open",
        )
    )
    outcome: list[object] = []
    worker = threading.Thread(target=lambda: outcome.append(settle_pair(engine, organiser, provider, month)))
    worker.start()
    try:
        deadline = time.monotonic() + 30
        with engine.connect() as watch:
            while time.monotonic() < deadline:
                waiting = watch.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                ).scalar_one()
                if waiting:
                    break
                time.sleep(0.05)
            else:
                pytest.fail("settle_pair never waited for the other run's settlement")
        transaction.commit()
    finally:
        other.close()
        worker.join(30)
    assert outcome == [None]
    assert len(settlements_of(engine, organiser, provider)) == 1
