"""Every rule of INTERFACES §2 broken once, with the rule, field and reason checked; versions that
are not newer are superseded and change nothing; messages whose voucher, order or delivery has
not arrived wait."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from psop_hub.consumers.apply import apply
from psop_hub.hub.errors import Waiting
from psop_hub.hub.senders import Sender
from psop_hub.hub.tables import deliveries, orders
from tests.integration.helpers import PROVIDER_SENDER, SYSTEM, status_of, stored, voucher_row
from tests.messages import (
    ORGANISER,
    OTHER_PROVIDER,
    amended,
    assigned,
    cancelled,
    corrected,
    delivery,
    ended,
    granted,
    order_delivery,
    placed,
    revoked,
    uid,
)

OTHER = Sender("other-provider", "provider", None, OTHER_PROVIDER)
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


RULES: list[tuple[str, Scenario, str]] = [
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

    name = uid("other-provider")
    add_client(engine, name, "provider", None, OTHER_PROVIDER)
    number = uid("T")
    run(engine, voucher_ready(number))  # assigned to PROVIDER, no deliveries yet
    hub_id = stored(
        engine, assigned(number, provider=OTHER_PROVIDER), Sender(name, "provider", None, OTHER_PROVIDER)
    )
    result = apply(engine, hub_id, 1)
    assert result.status == "rejected"
    assert result.detail.startswith("provider_change_by_organiser: ")
    assert PROVIDER_SENDER.provider not in result.detail  # the current provider is not told to another
    assert voucher_row(engine, number).provider == PROVIDER_SENDER.provider
    # the organiser's system may change it while there are no deliveries
    assert apply(engine, stored(engine, assigned(number, provider=OTHER_PROVIDER)), 1).status == "applied"
