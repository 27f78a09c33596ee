"""Every rule of INTERFACES §2 broken once, with the rule, field and reason checked; versions that
are not newer are superseded and change nothing; messages whose voucher, order or delivery has
not arrived wait."""

from __future__ import annotations

import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from psop_hub.consumers.apply import apply
from psop_hub.hub.errors import NotAllowed, Waiting
from psop_hub.hub.senders import Sender, add_client
from psop_hub.hub.tables import deliveries, orders, provider_approvals, vouchers
from tests.integration.helpers import PROVIDER_SENDER, SYSTEM, status_of, stored, voucher_row
from tests.messages import (
    ORGANISER,
    OTHER_ORGANISER,
    OTHER_PROVIDER,
    amended,
    approval,
    assigned,
    cancelled,
    corrected,
    delivery,
    ended,
    granted,
    new_business_id,
    order_delivery,
    placed,
    revoked,
    uid,
)

OTHER = Sender("other-provider", "provider", (), OTHER_PROVIDER)
Step = tuple[dict[str, Any], Sender]
Scenario = Callable[[str], tuple[list[Step], Step]]


def voucher_ready(n: str, quantity: str = "10") -> list[Step]:
    """A granted voucher assigned to PROVIDER."""
    return [(granted(n, quantity=quantity), SYSTEM), (assigned(n), SYSTEM)]


def assigned_from(n: str, start_date: str) -> dict[str, Any]:
    """voucher.assigned with another start date."""
    raw = assigned(n)
    return {**raw, "payload": {**raw["payload"], "start_date": start_date}}


def with_delivery(n: str, event_id: str, quantity: str = "2") -> list[Step]:
    """voucher_ready plus one delivery."""
    return [*voucher_ready(n), (delivery(n, quantity, event_id=event_id), PROVIDER_SENDER)]


def _delivered_then(probe: Callable[[str, str], Step]) -> Scenario:
    def scenario(n: str) -> tuple[list[Step], Step]:
        ev = uid("ev")
        return with_delivery(n, ev), probe(n, ev)

    return scenario


def self_assigned(n: str, provider: str, start_date: str = "2026-11-01") -> Step:
    """voucher.assigned sent by the provider itself (a client of its own, made up for the test)."""
    raw = assigned(n, provider=provider)
    raw["payload"]["start_date"] = start_date
    return raw, Sender(uid("provider"), "provider", (), provider)


OTHER_COUNTY = Sender("other-county-system", "system", (OTHER_ORGANISER,), None)


def _unapproved(make: Callable[[str], list[Step]], start_date: str = "2026-11-01") -> Scenario:
    """A granted voucher (service KH01, valid 2026-11-01..2027-12-31), the approvals `make`
    sends for a fresh provider, and that provider's self-assignment from `start_date`."""

    def scenario(n: str) -> tuple[list[Step], Step]:
        provider = new_business_id()
        return [(granted(n), SYSTEM), *make(provider)], self_assigned(n, provider, start_date)

    return scenario


RULES: list[tuple[str, Scenario, str]] = [
    ("approved_provider", _unapproved(lambda p: []), "payload.provider"),
    (
        "approved_provider",
        _unapproved(lambda p: [(approval(p, service_codes=["KH02", "SA01"]), SYSTEM)]),
        "payload.provider",
    ),
    (
        "approved_provider",
        _unapproved(lambda p: [(approval(p, valid_from="2026-12-01"), SYSTEM)]),
        "payload.provider",
    ),
    (
        "approved_provider",
        _unapproved(lambda p: [(approval(p, valid_to="2026-12-31"), SYSTEM)], start_date="2027-01-01"),
        "payload.provider",
    ),
    (
        # approved by another organiser: the defect of an outside test (a provider taking any
        # organiser's voucher) is exactly this
        "approved_provider",
        _unapproved(lambda p: [(approval(p, organiser=OTHER_ORGANISER), OTHER_COUNTY)]),
        "payload.provider",
    ),
    (
        # checked first: a revoked voucher says nothing more to a provider that is not approved
        "approved_provider",
        lambda n: ([(granted(n), SYSTEM), (revoked(n, 2), SYSTEM)], self_assigned(n, new_business_id())),
        "payload.provider",
    ),
    ("voucher_granted_once", lambda n: (voucher_ready(n), (granted(n), SYSTEM)), "payload.voucher_number"),
    (
        "voucher_revoked",
        lambda n: ([*voucher_ready(n), (revoked(n, 2), SYSTEM)], (amended(n, 3, quantity="5"), SYSTEM)),
        "payload.voucher_number",
    ),
    (
        "validity_order",
        lambda n: (voucher_ready(n), (amended(n, 2, valid_to="2026-10-01"), SYSTEM)),
        "payload.valid_to",
    ),
    (
        "assignment_inside_validity",
        lambda n: ([(granted(n), SYSTEM)], (assigned_from(n, "2028-02-01"), SYSTEM)),
        "payload.start_date",
    ),
    (
        "provider_change_after_deliveries",
        lambda n: (with_delivery(n, uid("ev")), (assigned(n, provider=OTHER_PROVIDER), SYSTEM)),
        "payload.provider",
    ),
    (
        "assigned_provider_only",
        lambda n: (voucher_ready(n), (delivery(n, provider=OTHER_PROVIDER), OTHER)),
        "payload.provider",
    ),
    (
        "inside_validity",
        lambda n: (voucher_ready(n), (delivery(n, service_date="2028-01-05"), PROVIDER_SENDER)),
        "payload.service_date",
    ),
    (
        "after_assignment",
        lambda n: (
            [(granted(n), SYSTEM), (assigned_from(n, "2026-12-01"), SYSTEM)],
            (delivery(n, service_date="2026-11-20"), PROVIDER_SENDER),
        ),
        "payload.service_date",
    ),
    (
        "before_revocation",
        lambda n: (
            [*voucher_ready(n), (revoked(n, 2, "2026-11-10"), SYSTEM)],
            (delivery(n, service_date="2026-11-10"), PROVIDER_SENDER),
        ),
        "payload.service_date",
    ),
    (
        "voucher_unit",
        lambda n: (voucher_ready(n), (delivery(n, unit="visit"), PROVIDER_SENDER)),
        "payload.unit",
    ),
    (
        "within_quantity",
        lambda n: (voucher_ready(n, "10"), (delivery(n, "10.25"), PROVIDER_SENDER)),
        "payload.quantity",
    ),
    (
        "within_quantity",
        lambda n: (
            [*with_delivery(n, ev := uid("ev")), (delivery(n, "7.75"), PROVIDER_SENDER)],
            (corrected(ev, 2, "2.5"), PROVIDER_SENDER),  # 0.25 left; the correction wants 0.5 more
        ),
        "payload.quantity",
    ),
    (
        "event_id_unique",
        _delivered_then(lambda n, ev: (delivery(n, "1", event_id=ev), PROVIDER_SENDER)),
        "payload.event_id",
    ),
    (
        "delivery_cancelled",
        lambda n: (
            [*with_delivery(n, ev := uid("ev")), (cancelled(ev, 2), PROVIDER_SENDER)],
            (corrected(ev, 3, "1"), PROVIDER_SENDER),
        ),
        "payload.event_id",
    ),
    ("order_placed_once", lambda n: ([(placed(n), SYSTEM)], (placed(n), SYSTEM)), "payload.order_number"),
    (
        "order_dates",
        lambda n: ([(placed(n), SYSTEM)], (ended(n, 2, "2026-10-01"), SYSTEM)),
        "payload.end_date",
    ),
    (
        "ordered_provider_only",
        lambda n: ([(placed(n), SYSTEM)], (order_delivery(n, provider=OTHER_PROVIDER), OTHER)),
        "payload.provider",
    ),
    (
        "inside_order_period",
        lambda n: (
            [(placed(n), SYSTEM), (ended(n, 2, "2026-11-15"), SYSTEM)],
            (order_delivery(n), PROVIDER_SENDER),
        ),
        "payload.service_date",
    ),
    (
        "order_unit",
        lambda n: ([(placed(n), SYSTEM)], (order_delivery(n, unit="hour"), PROVIDER_SENDER)),
        "payload.unit",
    ),
    (
        "within_quantity",
        lambda n: ([(placed(n, quantity="3"), SYSTEM)], (order_delivery(n, "4"), PROVIDER_SENDER)),
        "payload.quantity",
    ),
]


def run(engine: Engine, steps: list[Step]) -> None:
    """Apply setup messages, each of which must be applied."""
    for raw, sender in steps:
        result = apply(engine, stored(engine, raw, sender), 1)
        assert result.status == "applied", result.detail


@pytest.mark.parametrize(
    ("rule", "scenario", "field"), RULES, ids=[f"{r[0]}-{i}" for i, r in enumerate(RULES)]
)
def test_each_rule_rejects_with_its_name_and_field(
    engine: Engine, rule: str, scenario: Scenario, field: str
) -> None:
    setup, (raw, sender) = scenario(uid("R"))
    run(engine, setup)
    hub_id = stored(engine, raw, sender)
    result = apply(engine, hub_id, 1)
    assert result.status == "rejected"
    assert result.detail.startswith(f"{rule}: ")
    row = status_of(engine, hub_id)
    assert row.status == "rejected"
    assert row.errors[0]["field"] == field
    assert row.errors[0]["message"]
    assert row.errors[0]["rule"] == rule  # each error names its rule (a file's result shows it)


def test_numbers_in_rule_messages_and_details_are_written_one_way(engine: Engine) -> None:
    n = uid("R")
    grant = apply(engine, stored(engine, granted(n, quantity="10", unit_value="25")), 1)
    assert grant.detail == f"voucher {n} granted: 10.00 hour at 25.00"
    run(engine, [(assigned(n, price="30"), SYSTEM)])
    first = apply(engine, stored(engine, delivery(n, "7.5"), PROVIDER_SENDER), 1)
    assert first.detail == f"7.50 hour on voucher {n}: organiser pays 187.50, client 37.50"
    over = apply(engine, stored(engine, delivery(n, "3"), PROVIDER_SENDER), 1)
    assert (
        over.detail
        == f"within_quantity: this would take voucher {n} to 10.50 hour, over its 10.00; 2.50 remain"
    )


SUPERSEDED: list[tuple[str, Scenario]] = [
    (
        "amendment with the same version",
        lambda n: (
            [*voucher_ready(n), (amended(n, 3, quantity="20"), SYSTEM)],
            (amended(n, 3, quantity="1"), SYSTEM),
        ),
    ),
    (
        "older amendment after a newer one",
        lambda n: (
            [*voucher_ready(n), (amended(n, 4, quantity="20"), SYSTEM)],
            (amended(n, 2, quantity="1"), SYSTEM),
        ),
    ),
    (
        "revocation older than an amendment",
        lambda n: ([*voucher_ready(n), (amended(n, 3, quantity="20"), SYSTEM)], (revoked(n, 2), SYSTEM)),
    ),
    (
        "order end not newer",
        lambda n: ([(placed(n), SYSTEM), (ended(n, 3), SYSTEM)], (ended(n, 2, "2027-01-31"), SYSTEM)),
    ),
    (
        "correction not newer",
        lambda n: (
            [*with_delivery(n, ev := uid("ev")), (corrected(ev, 3, "1"), PROVIDER_SENDER)],
            (corrected(ev, 2, "0.5"), PROVIDER_SENDER),
        ),
    ),
]


@pytest.mark.parametrize(("name", "scenario"), SUPERSEDED, ids=[s[0] for s in SUPERSEDED])
def test_not_newer_versions_are_superseded_and_change_nothing(
    engine: Engine, name: str, scenario: Scenario
) -> None:
    number = uid("S")
    setup, (raw, sender) = scenario(number)
    run(engine, setup)
    before = _state(engine, number)
    hub_id = stored(engine, raw, sender)
    result = apply(engine, hub_id, 1)
    assert result.status == "superseded", result.detail
    assert "not newer" in result.detail
    assert status_of(engine, hub_id).status == "superseded"
    assert _state(engine, number) == before


def _state(engine: Engine, number: str) -> Any:
    with engine.connect() as conn:
        order = conn.execute(select(orders).where(orders.c.order_number == number)).one_or_none()
        rows = conn.execute(select(deliveries).where(deliveries.c.voucher_number == number)).all()
    voucher = None if order else voucher_row(engine, number)
    strip = lambda r: None if r is None else {k: v for k, v in r._mapping.items() if k not in ("updated_at",)}  # noqa: E731
    return strip(voucher), strip(order), sorted(str(strip(r)) for r in rows)


@pytest.mark.parametrize(
    ("waiting", "arrives"),
    [
        (lambda n: amended(n, 2, quantity="5"), lambda n: [granted(n)]),
        (lambda n: assigned(n), lambda n: [granted(n)]),
        (lambda n: revoked(n, 2), lambda n: [granted(n)]),
        (lambda n: ended(n, 2), lambda n: [placed(n)]),
    ],
    ids=["amendment", "assignment", "revocation", "order end"],
)
def test_messages_before_their_subject_wait(
    engine: Engine, waiting: Callable[[str], dict[str, Any]], arrives: Callable[[str], list[dict[str, Any]]]
) -> None:
    number = uid("W")
    hub_id = stored(engine, waiting(number))
    with pytest.raises(Waiting, match="has not arrived yet"):
        apply(engine, hub_id, 1)
    run(engine, [(raw, SYSTEM) for raw in arrives(number)])
    assert apply(engine, hub_id, 2).status == "applied"


def test_correction_before_its_delivery_waits(engine: Engine) -> None:
    number, ev = uid("W"), uid("ev")
    hub_id = stored(engine, corrected(ev, 2, "1"), PROVIDER_SENDER)
    with pytest.raises(Waiting):
        apply(engine, hub_id, 1)
    run(engine, with_delivery(number, ev, "3"))
    assert apply(engine, hub_id, 2).status == "applied"
    assert voucher_row(engine, number).quantity_used == Decimal("1")


def test_amended_below_delivered_applies_and_blocks_further_deliveries(engine: Engine) -> None:
    number = uid("A")
    run(engine, [*voucher_ready(number, "10"), (delivery(number, "6"), PROVIDER_SENDER)])
    result = apply(engine, stored(engine, amended(number, 2, quantity="4")), 1)
    assert result.status == "applied"
    assert "already delivered" in result.detail
    v = voucher_row(engine, number)
    assert (v.quantity, v.quantity_used) == (Decimal("4"), Decimal("6"))
    blocked = apply(engine, stored(engine, delivery(number, "0.5"), PROVIDER_SENDER), 1)
    assert blocked.status == "rejected" and blocked.detail.startswith("within_quantity")


def test_correction_and_cancellation_give_back_and_take_the_difference(engine: Engine) -> None:
    number, ev = uid("C"), uid("ev")
    run(engine, with_delivery(number, ev, "4"))
    run(engine, [(corrected(ev, 2, "6"), PROVIDER_SENDER)])
    assert voucher_row(engine, number).quantity_used == Decimal("6")
    with engine.connect() as conn:
        d = conn.execute(select(deliveries).where(deliveries.c.event_id == ev)).one()
    assert (d.status, d.version, d.voucher_share, d.client_share) == (
        "corrected",
        2,
        Decimal("150.00"),
        Decimal("30.00"),
    )
    run(engine, [(cancelled(ev, 3), PROVIDER_SENDER)])
    assert voucher_row(engine, number).quantity_used == Decimal("0")
    with engine.connect() as conn:
        d = conn.execute(select(deliveries).where(deliveries.c.event_id == ev)).one()
    assert (d.status, d.voucher_share) == ("cancelled", Decimal("0.00"))


def test_order_delivery_pays_the_contract_price(engine: Engine) -> None:
    number = uid("O")
    run(engine, [(placed(number, unit_price="42.00"), SYSTEM)])
    run(engine, [(order_delivery(number, "2", price="45.00"), PROVIDER_SENDER)])
    run(engine, [(order_delivery(number, "1", price="40.00"), PROVIDER_SENDER)])
    with engine.connect() as conn:
        o = conn.execute(
            select(orders).where(orders.c.organiser == ORGANISER, orders.c.order_number == number)
        ).one()
        shares = sorted(
            conn.execute(
                select(deliveries.c.voucher_share).where(deliveries.c.order_number == number)
            ).scalars()
        )
    assert o.quantity_used == Decimal("3")
    assert shares == [Decimal("40.00"), Decimal("84.00")]


def test_provider_cannot_take_over_a_voucher_assigned_to_another(engine: Engine) -> None:
    from psop_hub.hub.senders import add_client

    name, other = uid("other-provider"), new_business_id()
    add_client(engine, name, "provider", None, other)
    number = uid("T")
    # approved, so that it is the provider change, not the approval, that stops it
    run(engine, [*voucher_ready(number), (approval(other), SYSTEM)])  # assigned to PROVIDER, no deliveries
    hub_id = stored(engine, assigned(number, provider=other), Sender(name, "provider", (), other))
    result = apply(engine, hub_id, 1)
    assert result.status == "rejected"
    assert result.detail.startswith("provider_change_by_organiser: ")
    assert PROVIDER_SENDER.provider not in result.detail  # the current provider is not told to another
    assert voucher_row(engine, number).provider == PROVIDER_SENDER.provider
    # the organiser's system may change it while there are no deliveries
    assert apply(engine, stored(engine, assigned(number, provider=other)), 1).status == "applied"


def _approvals_of(engine: Engine, provider: str) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(select(provider_approvals).where(provider_approvals.c.provider == provider)).all()
        )


@pytest.mark.parametrize(
    "approvals",
    [
        [approval],
        [lambda p: approval(p, service_codes=["SA01", "KH01"], valid_from="2026-11-01")],
        [lambda p: approval(p, valid_from="2026-11-01", valid_to="2026-11-01")],
    ],
    ids=["every-service", "for-the-service", "on-the-last-day"],
)
def test_an_approved_provider_assigns_itself(
    engine: Engine, approvals: list[Callable[[str], dict[str, Any]]]
) -> None:
    number, provider = uid("AP"), new_business_id()
    run(engine, [(granted(number), SYSTEM), *[(make(provider), SYSTEM) for make in approvals]])
    run(engine, [self_assigned(number, provider)])
    v = voucher_row(engine, number)
    assert (v.provider, v.status) == (provider, "assigned")


def test_the_organisers_own_system_assigns_an_unapproved_provider(engine: Engine) -> None:
    number, provider = uid("AP"), new_business_id()
    run(engine, [(granted(number), SYSTEM), (assigned(number, provider=provider), SYSTEM)])
    assert voucher_row(engine, number).provider == provider
    assert _approvals_of(engine, provider) == []


@pytest.mark.parametrize("organiser", [OTHER_ORGANISER, ORGANISER], ids=["first", "second"])
def test_a_system_of_several_organisers_is_each_ones_own_system(engine: Engine, organiser: str) -> None:
    """A shared client system acts for each of its organisers: its assignment of an unapproved
    provider is that organiser's own decision, whichever of its organisers the voucher is of."""
    name = uid("shared-system")
    add_client(engine, name, "system", (OTHER_ORGANISER, ORGANISER), None)
    shared = Sender(name, "system", (OTHER_ORGANISER, ORGANISER), None)
    number, provider = uid("AP"), new_business_id()
    assignment = assigned(number, provider=provider)
    assignment["payload"]["organiser"] = organiser
    run(engine, [(granted(number, organiser=organiser), shared), (assignment, shared)])
    with engine.connect() as conn:
        row = conn.execute(
            select(vouchers.c.provider).where(
                vouchers.c.organiser == organiser, vouchers.c.voucher_number == number
            )
        ).one()
    assert row.provider == provider
    assert _approvals_of(engine, provider) == []


def test_a_system_of_other_organisers_needs_the_approval(engine: Engine) -> None:
    """A system client of two other organisers is not this organiser's system: a provider it
    assigns needs the approval (and it may not even send for the organiser, at the door)."""
    name = uid("shared-elsewhere")
    elsewhere = (OTHER_ORGANISER, new_business_id())
    add_client(engine, name, "system", elsewhere, None)
    number, provider = uid("AP"), new_business_id()
    run(engine, [(granted(number), SYSTEM)])
    with pytest.raises(NotAllowed, match="organisers"):
        stored(engine, assigned(number, provider=provider), Sender(name, "system", elsewhere, None))
    assert voucher_row(engine, number).provider is None


def test_a_sender_that_is_not_the_organisers_system_needs_the_approval(engine: Engine) -> None:
    # fails closed: a sender without a client row is never taken for the organiser's system
    number, provider = uid("AP"), new_business_id()
    run(engine, [(granted(number), SYSTEM)])
    ghost = Sender(uid("gone"), "system", (ORGANISER,), None)
    result = apply(engine, stored(engine, assigned(number, provider=provider), ghost), 1)
    assert result.status == "rejected" and result.detail.startswith("approved_provider: ")
    assert voucher_row(engine, number).provider is None


def test_the_rejection_names_the_provider_service_and_date(engine: Engine) -> None:
    number, provider = uid("AP"), new_business_id()
    run(engine, [(granted(number), SYSTEM), (approval(provider, service_codes=["SA01"]), SYSTEM)])
    raw, sender = self_assigned(number, provider, "2026-11-20")
    hub_id = stored(engine, raw, sender)
    assert apply(engine, hub_id, 1).status == "rejected"
    message = status_of(engine, hub_id).errors[0]["message"]
    for words in (provider, ORGANISER, "KH01", "2026-11-20", "SA01"):
        assert words in message, message
    v = voucher_row(engine, number)
    assert (v.provider, v.status) == (None, "granted")


def test_an_older_approval_is_superseded_and_changes_nothing(engine: Engine) -> None:
    number, provider = uid("AP"), new_business_id()
    run(engine, [(granted(number), SYSTEM), (approval(provider, version=3, service_codes=["KH01"]), SYSTEM)])
    before = _approvals_of(engine, provider)
    for version in (3, 2):
        older = approval(provider, version=version, valid_from="2027-06-01", valid_to="2027-06-30")
        hub_id = stored(engine, older)
        result = apply(engine, hub_id, 1)
        assert result.status == "superseded", result.detail
        assert "not newer" in result.detail
        assert status_of(engine, hub_id).status == "superseded"
    assert _approvals_of(engine, provider) == before
    run(engine, [self_assigned(number, provider)])  # still approved as version 3 says
    assert voucher_row(engine, number).provider == provider


def test_a_newer_approval_with_valid_to_ends_it(engine: Engine) -> None:
    late, early, provider = uid("AP"), uid("AP"), new_business_id()
    run(
        engine,
        [
            (granted(late), SYSTEM),
            (granted(early), SYSTEM),
            (approval(provider), SYSTEM),
            (approval(provider, version=2, valid_to="2026-11-30"), SYSTEM),
        ],
    )
    (row,) = _approvals_of(engine, provider)
    assert (row.version, row.valid_to, row.service_codes) == (2, date(2026, 11, 30), None)
    raw, sender = self_assigned(late, provider, "2026-12-01")
    result = apply(engine, stored(engine, raw, sender), 1)
    assert result.status == "rejected" and result.detail.startswith("approved_provider: ")
    assert voucher_row(engine, late).provider is None
    run(engine, [self_assigned(early, provider, "2026-11-30")])
    assert voucher_row(engine, early).provider == provider


def test_concurrent_approvals_of_one_provider_end_at_the_newest(engine: Engine) -> None:
    provider = new_business_id()
    hub_ids = [stored(engine, approval(provider, version=v, valid_from=f"2026-0{v}-01")) for v in range(1, 7)]
    random.shuffle(hub_ids)
    with ThreadPoolExecutor(max_workers=len(hub_ids)) as pool:
        statuses = list(pool.map(lambda h: apply(engine, h, 1).status, hub_ids))
    assert set(statuses) <= {"applied", "superseded"} and "applied" in statuses
    (row,) = _approvals_of(engine, provider)
    assert (row.version, row.valid_from) == (6, date(2026, 6, 1))
