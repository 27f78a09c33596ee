"""Voucher state: grant, amendment, revocation and assignment, each rule named.

Versions: a grant is version 1; an amendment or revocation whose version is not newer than the
voucher's is recorded as `superseded` and changes nothing. A message about a voucher whose grant
has not arrived yet raises `Waiting` and is retried (messages from different systems arrive out
of order).

Assignment: the organiser's own system assigns whom it likes (the organiser's decision); any
other sender, that is the provider assigning itself, must be approved by the voucher's organiser
for the voucher's service on the `start_date` (rule `approved_provider`, checked before anything
else, so that a provider without an approval learns nothing more about the voucher).

Amending a voucher below what was already delivered: the organiser's decision is the record, so
it is applied as made. Deliveries already applied stay applied (they were within the voucher when
they came), `quantity_remaining` shows 0, `quantity_over` shows the excess, and every further
delivery is rejected by `within_quantity` until the quantity is raised again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from psop_hub.consumers.approvals import approval_problem
from psop_hub.consumers.outcome import Context, Outcome, superseded
from psop_hub.hub.database import raw
from psop_hub.hub.errors import RuleBroken, Waiting
from psop_hub.hub.money import number_text
from psop_hub.hub.tables import column_list, deliveries, vouchers
from psop_hub.mappings.payloads import VoucherAmended, VoucherAssigned, VoucherGranted, VoucherRevoked

LOCK_VOUCHER = (
    f"SELECT {column_list(vouchers)} FROM vouchers WHERE organiser = %s AND voucher_number = %s FOR UPDATE"
)


# The grant is the most frequent message of all: a named raw statement (see hub.database.raw).
GRANT = """
INSERT INTO vouchers (organiser, voucher_number, status, version, decision_date, client_hetu,
                      home_municipality, service_code, service_name, unit, unit_value, quantity,
                      valid_from, valid_to)
VALUES (%(organiser)s, %(voucher_number)s, 'granted', 1, %(decision_date)s, %(client_hetu)s,
        %(home_municipality)s, %(service_code)s, %(service_name)s, %(unit)s, %(unit_value)s, %(quantity)s,
        %(valid_from)s, %(valid_to)s)
ON CONFLICT ON CONSTRAINT pk_vouchers DO NOTHING
RETURNING voucher_number
"""

GRANT_MANY = """
INSERT INTO vouchers (organiser, voucher_number, status, version, decision_date, client_hetu,
                      home_municipality, service_code, service_name, unit, unit_value, quantity,
                      valid_from, valid_to)
SELECT organiser, voucher_number, 'granted', 1, decision_date, client_hetu, home_municipality,
       service_code, service_name, unit, unit_value, quantity, valid_from, valid_to
FROM jsonb_to_recordset(%s::jsonb)
AS g(n int, organiser text, voucher_number text, decision_date date, client_hetu text,
     home_municipality text, service_code text, service_name text, unit text, unit_value numeric,
     quantity numeric, valid_from date, valid_to date)
ORDER BY n
ON CONFLICT ON CONSTRAINT pk_vouchers DO NOTHING
RETURNING organiser, voucher_number
"""


def lock_voucher(conn: Connection, organiser: str, voucher_number: str) -> Any:
    """The voucher row, locked until commit so that writers of one voucher serialise; None if absent."""
    return raw(conn).execute(LOCK_VOUCHER, (organiser, voucher_number)).fetchone()


def require_voucher(conn: Connection, organiser: str, voucher_number: str) -> Any:
    """The locked voucher; `Waiting` if its grant has not arrived yet (the message is retried)."""
    row = lock_voucher(conn, organiser, voucher_number)
    if row is None:
        raise Waiting(f"voucher {voucher_number} of organiser {organiser} has not arrived yet")
    return row


def _update(conn: Connection, v: Any, **values: Any) -> None:
    conn.execute(
        update(vouchers)
        .where(vouchers.c.organiser == v.organiser, vouchers.c.voucher_number == v.voucher_number)
        .values(updated_at=func.now(), **values)
    )


def _grant_row(p: VoucherGranted) -> dict[str, Any]:
    """The values of a new voucher's row (GRANT's parameters)."""
    return {
        "organiser": p.organiser,
        "voucher_number": p.voucher_number,
        "decision_date": p.decision_date,
        "client_hetu": p.client.hetu,
        "home_municipality": p.client.home_municipality,
        "service_code": p.service.code,
        "service_name": p.service.name,
        "unit": p.unit,
        "unit_value": p.unit_value,
        "quantity": p.quantity,
        "valid_from": p.valid_from,
        "valid_to": p.valid_to,
    }


def _granted_before(p: VoucherGranted) -> RuleBroken:
    return RuleBroken(
        "voucher_granted_once",
        f"voucher {p.voucher_number} of organiser {p.organiser} was granted already; "
        "send voucher.amended to change it",
        "payload.voucher_number",
    )


def _grant_outcome(p: VoucherGranted) -> Outcome:
    return Outcome(
        "applied",
        f"voucher {p.voucher_number} granted: {number_text(p.quantity)} {p.unit} "
        f"at {number_text(p.unit_value)}",
    )


def granted(conn: Connection, ctx: Context, p: VoucherGranted) -> Outcome:
    """voucher.granted: a new voucher, version 1."""
    if raw(conn).execute(GRANT, _grant_row(p)).fetchone() is None:
        raise _granted_before(p)
    return _grant_outcome(p)


def granted_many(conn: Connection, items: Sequence[tuple[Context, Any]]) -> list[Outcome]:
    """`granted` for a batch, in one statement (the vouchers inserted in the batch's order, the
    lock order); raises `voucher_granted_once` for the first voucher granted before or twice in
    the batch, so that the batch is applied one by one."""
    rows = [{"n": n, **_grant_row(p)} for n, (_, p) in enumerate(items)]
    cur = raw(conn).execute(GRANT_MANY, (json.dumps(rows, default=str),))
    inserted = {(r.organiser, r.voucher_number) for r in cur}
    for _, p in items:
        if (p.organiser, p.voucher_number) not in inserted:
            raise _granted_before(p)
        inserted.discard((p.organiser, p.voucher_number))
    return [_grant_outcome(p) for _, p in items]


def amended(conn: Connection, ctx: Context, p: VoucherAmended) -> Outcome:
    """voucher.amended: new unit value, quantity or end date, if the version is newer."""
    v = require_voucher(conn, p.organiser, p.voucher_number)
    old = superseded("voucher", p.voucher_number, p.version, v.version)
    if old:
        return old
    if v.status == "revoked":
        raise RuleBroken(
            "voucher_revoked", f"voucher {p.voucher_number} is revoked", "payload.voucher_number"
        )
    if p.valid_to is not None and p.valid_to < v.valid_from:
        raise RuleBroken(
            "validity_order",
            f"valid_to {p.valid_to} is before the voucher's valid_from {v.valid_from}",
            "payload.valid_to",
        )
    changes = {
        name: getattr(p, name)
        for name in ("unit_value", "quantity", "valid_to")
        if getattr(p, name) is not None
    }
    _update(conn, v, version=p.version, **changes)
    detail = ", ".join(
        f"{k} {number_text(v_) if isinstance(v_, Decimal) else v_}" for k, v_ in changes.items()
    )
    quantity = changes.get("quantity", v.quantity)
    if quantity < v.quantity_used:
        detail += f"; {number_text(v.quantity_used)} {v.unit} already delivered: no further deliveries fit"
    return Outcome("applied", f"voucher {p.voucher_number} version {p.version}: {detail}")


def revoked(conn: Connection, ctx: Context, p: VoucherRevoked) -> Outcome:
    """voucher.revoked: no deliveries on or after `effective_date`, if the version is newer."""
    v = require_voucher(conn, p.organiser, p.voucher_number)
    old = superseded("voucher", p.voucher_number, p.version, v.version)
    if old:
        return old
    _update(
        conn, v, version=p.version, status="revoked", effective_end=p.effective_date, revoked_reason=p.reason
    )
    after = conn.execute(
        select(func.count()).where(
            deliveries.c.organiser == p.organiser,
            deliveries.c.voucher_number == p.voucher_number,
            deliveries.c.service_date >= p.effective_date,
            deliveries.c.status != "cancelled",
        )
    ).scalar_one()
    detail = f"voucher {p.voucher_number} revoked from {p.effective_date}"
    if after:
        detail += (
            f"; {after} deliveries on or after that date were applied before and stay (cancel them if wrong)"
        )
    return Outcome("applied", detail)


def assigned(conn: Connection, ctx: Context, p: VoucherAssigned) -> Outcome:
    """voucher.assigned: the provider the client chose, from `start_date` on."""
    v = require_voucher(conn, p.organiser, p.voucher_number)
    # Fails closed: only a system client of this very organiser is exempt from the approval.
    by_organiser = ctx.by_organisers_system(v.organiser)
    if not by_organiser:
        problem = approval_problem(conn, v.organiser, p.provider, v.service_code, p.start_date)
        if problem is not None:
            raise RuleBroken("approved_provider", problem, "payload.provider")
    if v.status == "revoked":
        raise RuleBroken(
            "voucher_revoked", f"voucher {p.voucher_number} is revoked", "payload.voucher_number"
        )
    if not v.valid_from <= p.start_date <= v.valid_to:
        raise RuleBroken(
            "assignment_inside_validity",
            f"start_date {p.start_date} is outside the voucher's validity {v.valid_from}..{v.valid_to}",
            "payload.start_date",
        )
    if v.provider is not None and v.provider != p.provider:
        if not by_organiser:
            # The client's choice may move to another provider only by the organiser's decision.
            raise RuleBroken(
                "provider_change_by_organiser",
                f"voucher {p.voucher_number} is assigned to another provider; "
                "only the organiser's system can change the provider",
                "payload.provider",
            )
        if v.quantity_used > 0:
            raise RuleBroken(
                "provider_change_after_deliveries",
                f"voucher {p.voucher_number} already has deliveries from its current provider",
                "payload.provider",
            )
    _update(
        conn,
        v,
        provider=p.provider,
        provider_price=p.provider_price,
        assigned_from=p.start_date,
        status="assigned" if v.status == "granted" else v.status,
    )
    return Outcome("applied", f"voucher {p.voucher_number} assigned to provider {p.provider}")
