"""Payments: the organiser's ERP confirms that it paid a settlement (`payment.confirmed`).

A settlement is paid once, by a message of a system of its organiser (a system client acts for
one or more organisers), with its amount to the cent.
Another organiser's settlement is answered exactly like a missing one: its existence is not theirs.
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from psop_hub.consumers.outcome import Context, Outcome
from psop_hub.hub.errors import RuleBroken
from psop_hub.hub.money import money_text
from psop_hub.hub.tables import clients, settlements
from psop_hub.mappings.payloads import PaymentConfirmed


def confirmed(conn: Connection, ctx: Context, p: PaymentConfirmed) -> Outcome:
    """payment.confirmed: mark a settlement of the sender's organisers paid, if the amount matches."""
    organisers = conn.execute(
        select(clients.c.organisers).where(clients.c.name == ctx.sender)
    ).scalar_one_or_none()
    # Locked so that two payments of one settlement applied at once cannot both pass the checks.
    s = conn.execute(
        select(settlements)
        .where(
            settlements.c.settlement_id == p.settlement_id,
            settlements.c.organiser.in_(list(organisers or ())),
        )
        .with_for_update()
    ).one_or_none()
    if not organisers or s is None:
        raise RuleBroken(
            "settlement_exists",
            f"no settlement {p.settlement_id} for this organiser",
            "payload.settlement_id",
        )
    if s.status == "paid":
        if s.payment_hub_id == ctx.hub_id:
            return Outcome("applied", f"settlement {s.settlement_id} was paid by this message already")
        raise RuleBroken(
            "settlement_unpaid",
            f"settlement {s.settlement_id} was already paid on {s.paid_date} "
            f"(amount {money_text(s.paid_amount)})",
            "payload.settlement_id",
        )
    if s.status != "open":
        raise RuleBroken(
            "settlement_open", f"settlement {s.settlement_id} is {s.status}", "payload.settlement_id"
        )
    if p.amount != s.amount:
        raise RuleBroken(
            "amount_matches",
            f"amount {money_text(p.amount)} differs from the settlement's {money_text(s.amount)} "
            f"by {money_text(p.amount - s.amount)}",
            "payload.amount",
        )
    conn.execute(
        update(settlements)
        .where(settlements.c.settlement_id == s.settlement_id)
        .values(
            status="paid",
            paid_date=p.paid_date,
            paid_amount=p.amount,
            payment_reference=p.reference,
            payment_hub_id=ctx.hub_id,
            updated_at=func.now(),
        )
    )
    return Outcome("applied", f"settlement {s.settlement_id} paid: {money_text(p.amount)}")
