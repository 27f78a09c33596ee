"""Read model of settlements: a settlement, its rows and its payment, as the REST API shows it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from psop_hub.hub.money import optional_money_text
from psop_hub.hub.tables import settlement_rows, settlements


def settlement_view(conn: Connection, settlement_id: str) -> dict[str, Any] | None:
    """The settlement with its rows and payment status, or None if there is no such settlement."""
    s = conn.execute(select(settlements).where(settlements.c.settlement_id == settlement_id)).one_or_none()
    if s is None:
        return None
    rows = conn.execute(
        select(settlement_rows)
        .where(settlement_rows.c.settlement_id == settlement_id)
        .order_by(settlement_rows.c.row_number)
    ).all()
    return {
        "settlement_id": s.settlement_id,
        "organiser": s.organiser,
        "provider": s.provider,
        "month": f"{s.month:%Y-%m}",
        "reference": s.reference,
        "amount": optional_money_text(s.amount),
        "status": s.status,
        "paid_date": None if s.paid_date is None else s.paid_date.isoformat(),
        "paid_amount": optional_money_text(s.paid_amount),
        "payment_reference": s.payment_reference,
        "rows": [
            {
                "row_number": r.row_number,
                "kind": r.kind,
                "service": {"code": r.service_code, "name": r.service_name},
                "unit": r.unit,
                "unit_price": optional_money_text(r.unit_price),
                "quantity": format(r.quantity, "f"),
                "amount": optional_money_text(r.amount),
            }
            for r in rows
        ],
        "created_at": s.created_at.isoformat(),
    }
