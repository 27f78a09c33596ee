"""payment.confirmed: a settlement is paid once, by its own organiser, with its amount to the cent."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal as D
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from psop_hub.consumers import payments
from psop_hub.consumers.apply import apply
from psop_hub.consumers.handlers import HANDLERS
from psop_hub.consumers.outcome import Context, Outcome
from psop_hub.consumers.settlement import settle_pair
from psop_hub.hub.errors import RuleBroken
from psop_hub.hub.senders import Sender, add_client
from psop_hub.hub.tables import settlements
from psop_hub.mappings.canonical import parse_payload
from psop_hub.mappings.payloads import PaymentConfirmed
from tests.integration.helpers import status_of, stored
from tests.integration.settling import add_delivery, business_id
from tests.messages import envelope, uid


def settlement(engine: Engine) -> tuple[Any, str]:
    """An open settlement of 123.45 and the name of its organiser's ERP client."""
    org, prov = business_id(), business_id()
    add_delivery(engine, org, prov, date(2026, 10, 7), "3", "41.15")
    summary = settle_pair(engine, org, prov, date(2026, 10, 1))
    assert summary is not None and summary.amount == D("123.45")
    erp = uid("erp")
    add_client(engine, erp, "system", org, None)
    return row(engine, summary.settlement_id), erp


def row(engine: Engine, settlement_id: str) -> Any:
    """The settlement row."""
    with engine.connect() as conn:
        return conn.execute(select(settlements).where(settlements.c.settlement_id == settlement_id)).one()


def payload(settlement_id: str, amount: str, reference: str = "1232") -> dict[str, str]:
    """A payment.confirmed payload paid on 5 December 2026."""
    return {
        "settlement_id": settlement_id,
        "paid_date": "2026-12-05",
        "amount": amount,
        "reference": reference,
    }


def pay(engine: Engine, sender: str, body: dict[str, str], hub_id: uuid.UUID | None = None) -> Outcome:
    """Apply the handler directly, in its own transaction, as the worker would."""
    p = parse_payload("payment.confirmed", body)
    assert isinstance(p, PaymentConfirmed)
    ctx = Context(hub_id=hub_id or uuid.uuid4(), sender=sender, type="payment.confirmed", message_id=uid())
    with engine.begin() as conn:
        return payments.confirmed(conn, ctx, p)


def test_exact_amount_marks_the_settlement_paid(engine: Engine) -> None:
    s, erp = settlement(engine)
    hub_id = uuid.uuid4()
    outcome = pay(engine, erp, payload(s.settlement_id, "123.45", s.reference), hub_id)
    assert outcome == Outcome("applied", f"settlement {s.settlement_id} paid: 123.45")
    paid = row(engine, s.settlement_id)
    assert (paid.status, paid.paid_date, paid.paid_amount) == ("paid", date(2026, 12, 5), D("123.45"))
    assert (paid.payment_reference, paid.payment_hub_id) == (s.reference, hub_id)


@pytest.mark.parametrize(
    ("amount", "difference"), [("123.44", "-0.01"), ("123.46", "0.01"), ("100", "-23.45")]
)
def test_an_amount_off_is_rejected_with_the_difference(engine: Engine, amount: str, difference: str) -> None:
    s, erp = settlement(engine)
    with pytest.raises(RuleBroken) as caught:
        pay(engine, erp, payload(s.settlement_id, amount))
    assert caught.value.rule == "amount_matches"
    assert caught.value.reason == (
        f"amount {D(amount):.2f} differs from the settlement's 123.45 by {difference}"
    )
    assert [e.field for e in caught.value.errors] == ["payload.amount"]
    assert row(engine, s.settlement_id).status == "open"


def test_unknown_and_another_organisers_settlements_are_answered_alike(engine: Engine) -> None:
    s, _ = settlement(engine)
    _, other_erp = settlement(engine)
    answers = []
    for settlement_id in (s.settlement_id, "PS-00000000-00000000-202610"):
        with pytest.raises(RuleBroken) as caught:
            pay(engine, other_erp, payload(settlement_id, "123.45"))
        errors = [(e.field, e.message.replace(settlement_id, "X")) for e in caught.value.errors]
        answers.append((caught.value.rule, caught.value.reason.replace(settlement_id, "X"), errors))
    assert answers[0] == answers[1]
    assert answers[0] == (
        "settlement_exists",
        "no settlement X for this organiser",
        [("payload.settlement_id", "no settlement X for this organiser")],
    )
    assert row(engine, s.settlement_id).status == "open"


def test_a_system_of_several_organisers_pays_each_ones_settlement_and_no_other(engine: Engine) -> None:
    first, _ = settlement(engine)
    second, _ = settlement(engine)
    third, _ = settlement(engine)
    shared = uid("shared-erp")
    add_client(engine, shared, "system", (first.organiser, second.organiser), None)
    with pytest.raises(RuleBroken, match=r"no settlement .* for this organiser"):
        pay(engine, shared, payload(third.settlement_id, "123.45", third.reference))
    for s in (first, second):
        outcome = pay(engine, shared, payload(s.settlement_id, "123.45", s.reference))
        assert outcome == Outcome("applied", f"settlement {s.settlement_id} paid: 123.45")
    assert [row(engine, s.settlement_id).status for s in (first, second, third)] == ["paid", "paid", "open"]


def test_a_second_payment_is_rejected(engine: Engine) -> None:
    s, erp = settlement(engine)
    pay(engine, erp, payload(s.settlement_id, "123.45"))
    with pytest.raises(RuleBroken, match=r"already paid on 2026-12-05") as caught:
        pay(engine, erp, payload(s.settlement_id, "123.45", s.reference))
    assert caught.value.rule == "settlement_unpaid"


def test_concurrent_payments_of_one_settlement_pay_it_once(engine: Engine) -> None:
    s, erp = settlement(engine)

    def attempt(_: int) -> str:
        try:
            return pay(engine, erp, payload(s.settlement_id, "123.45")).status
        except RuleBroken as exc:
            return exc.rule

    with ThreadPoolExecutor(6) as pool:
        outcomes = sorted(pool.map(attempt, range(6)))
    assert outcomes == ["applied"] + ["settlement_unpaid"] * 5


def test_through_apply_a_wrong_amount_ends_rejected_with_the_field(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(HANDLERS, "payment.confirmed", payments.confirmed)
    s, erp = settlement(engine)
    sender = Sender(erp, "system", (s.organiser,), None)
    wrong = stored(engine, envelope("payment.confirmed", payload(s.settlement_id, "123.40")), sender)
    assert apply(engine, wrong, 1).status == "rejected"
    message = status_of(engine, wrong)
    assert message.errors == [
        {
            "field": "payload.amount",
            "message": "amount 123.40 differs from the settlement's 123.45 by -0.05",
            "rule": "amount_matches",
        }
    ]
    right = stored(engine, envelope("payment.confirmed", payload(s.settlement_id, "123.45")), sender)
    assert apply(engine, right, 1).status == "applied"
    assert row(engine, s.settlement_id).payment_hub_id == right
