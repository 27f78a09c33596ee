"""Read models of settlements, for the REST API and the admin page.

- `settlement_view(conn, settlement_id)`: a settlement, its rows and its payment, as
  `GET /api/v1/settlements/{settlement_id}` shows it.
- `settlement_list(conn, organisers=, provider=, month=, limit=)`: settlements without their rows,
  newest month first, as `GET /api/v1/settlements` lists them (the caller's scope decides the
  organisers or provider given).
- `settlements_waiting_for_details(engine, limit=None) -> list[WaitingInvoice]`: every settlement
  whose Finvoice invoice is not written because a party's invoicing details are missing, oldest
  first, each with whose details (`provider`, `organiser`) and which fields (`missing_details` of
  `hub.parties`: the same rule the invoice writer applies) are missing. So no invoice is stuck
  unseen: `GET /api/v1/admin/settlements/waiting` answers it, the admin page lists it, and the
  invoice is written by the file adapter's next round once the details are stored
  (`hub parties set` or `PUT /api/v1/parties/{business_id}`). The name and the fields of
  `WaitingInvoice` are a stable interface.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine, Row

from psop_hub.hub.database import unavailable_on_outage
from psop_hub.hub.money import optional_money_text
from psop_hub.hub.parties import Party, missing_details
from psop_hub.hub.tables import parties, settlement_rows, settlements

__all__ = ["WaitingInvoice", "settlement_list", "settlement_view", "settlements_waiting_for_details"]


def _header(s: Any) -> dict[str, Any]:
    """A settlement's own fields, as both the view and the list answer them."""
    return {
        "settlement_id": s.settlement_id,
        "organiser": s.organiser,
        "provider": s.provider,
        "month": f"{s.month:%Y-%m}",
        "reference": s.reference,
        "amount": optional_money_text(s.amount),
        "status": s.status,
        "paid_date": None if s.paid_date is None else s.paid_date.isoformat(),
    }


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
        **_header(s),
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
                # the month its deliveries were delivered in (an adjustment's may be earlier)
                "service_month": None if r.service_month is None else f"{r.service_month:%Y-%m}",
            }
            for r in rows
        ],
        "created_at": s.created_at.isoformat(),
    }


def settlement_list(
    conn: Connection,
    *,
    organisers: tuple[str, ...] | None = None,
    provider: str | None = None,
    month: date | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Settlements (without rows) of these organisers, this provider and month (None: any),
    newest first."""
    query = select(settlements).order_by(
        settlements.c.month.desc(), settlements.c.organiser, settlements.c.provider
    )
    if organisers is not None:
        query = query.where(settlements.c.organiser.in_(organisers))
    if provider is not None:
        query = query.where(settlements.c.provider == provider)
    if month is not None:
        query = query.where(settlements.c.month == month)
    return [
        {
            **_header(s),
            "created_at": s.created_at.isoformat(),
        }
        for s in conn.execute(query.limit(limit)).all()
    ]


@dataclass(frozen=True)
class WaitingInvoice:
    """A settlement whose invoice waits for invoicing details, and which ones."""

    settlement_id: str
    organiser: str
    provider: str
    month: date
    amount: Decimal
    created_at: datetime
    # Fields of `hub.parties.Party` the invoice needs and lacks; `name` too when none are stored.
    provider_missing: tuple[str, ...]
    organiser_missing: tuple[str, ...]

    @property
    def waiting_for(self) -> tuple[str, ...]:
        """Whose details are missing: `("provider",)`, `("organiser",)` or both."""
        return tuple(
            role
            for role, missing in (("provider", self.provider_missing), ("organiser", self.organiser_missing))
            if missing
        )

    def as_dict(self) -> dict[str, Any]:
        """The JSON form of the admin API."""
        return {
            "settlement_id": self.settlement_id,
            "organiser": self.organiser,
            "provider": self.provider,
            "month": f"{self.month:%Y-%m}",
            "amount": optional_money_text(self.amount),
            "created_at": self.created_at.isoformat(),
            "waiting_for": list(self.waiting_for),
            "missing": {"provider": list(self.provider_missing), "organiser": list(self.organiser_missing)},
        }


_seller = parties.alias("seller")
_buyer = parties.alias("buyer")
_PARTY_COLUMNS = ("business_id", "name", "street", "postcode", "town", "iban", "bic")


def _labelled(alias: Any) -> list[Any]:
    return [alias.c[name].label(f"{alias.name}_{name}") for name in _PARTY_COLUMNS]


def _party(row: Row[Any], alias: Any) -> Party | None:
    values = [getattr(row, f"{alias.name}_{name}") for name in _PARTY_COLUMNS]
    return None if values[0] is None else Party(*values)


def settlements_waiting_for_details(engine: Engine, limit: int | None = None) -> list[WaitingInvoice]:
    """Settlements whose invoice is not written because invoicing details are missing, oldest first."""
    # The same settlements the file adapter tries to invoice (`adapters.invoices.write_pending`).
    query = (
        select(
            settlements.c.settlement_id,
            settlements.c.organiser,
            settlements.c.provider,
            settlements.c.month,
            settlements.c.amount,
            settlements.c.created_at,
            *_labelled(_seller),
            *_labelled(_buyer),
        )
        .outerjoin(_seller, _seller.c.business_id == settlements.c.provider)
        .outerjoin(_buyer, _buyer.c.business_id == settlements.c.organiser)
        .where(settlements.c.invoice_written_at.is_(None), settlements.c.amount > 0)
        .order_by(settlements.c.created_at, settlements.c.settlement_id)
    )
    with unavailable_on_outage(), engine.connect() as conn:
        rows = conn.execute(query).all()
    waiting: list[WaitingInvoice] = []
    for row in rows:
        provider_missing = missing_details(_party(row, _seller), seller=True)
        organiser_missing = missing_details(_party(row, _buyer), seller=False)
        if not (provider_missing or organiser_missing):
            continue  # complete: the file adapter writes it on its next round
        waiting.append(
            WaitingInvoice(
                row.settlement_id,
                row.organiser,
                row.provider,
                row.month,
                row.amount,
                row.created_at,
                provider_missing,
                organiser_missing,
            )
        )
        if limit is not None and len(waiting) >= limit:
            break
    return waiting
