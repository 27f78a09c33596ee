"""Provider approvals: the providers an organiser has approved (hyväksytyt palveluntuottajat).

One row per (organiser, provider) holds the latest version of the approval. A newer version
replaces it (a `valid_to` ends it); a version that is not newer is recorded as `superseded` and
changes nothing. `approval_problem` is the rule `approved_provider` that a provider's
self-assignment to a voucher must pass.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from psop_hub.consumers.outcome import Context, Outcome, superseded
from psop_hub.hub.database import raw
from psop_hub.hub.tables import provider_approvals as approvals
from psop_hub.mappings.payloads import ProviderApproved

LOCK_APPROVAL = (
    "SELECT service_codes, valid_from, valid_to FROM provider_approvals "
    "WHERE organiser = %s AND provider = %s FOR SHARE"
)


def _services(codes: list[str] | None) -> str:
    return "every service" if codes is None else "services " + ", ".join(codes)


def approved(conn: Connection, ctx: Context, p: ProviderApproved) -> Outcome:
    """provider.approved: insert the approval, or replace it when the version is newer."""
    values = {
        "version": p.version,
        "service_codes": p.service_codes,
        "valid_from": p.valid_from,
        "valid_to": p.valid_to,
        "hub_id": ctx.hub_id,
    }
    # One statement that inserts or replaces: ON CONFLICT locks the existing row (even when the
    # version check fails), so two approvals of one pair applied at once serialise.
    statement = pg_insert(approvals).values(organiser=p.organiser, provider=p.provider, **values)
    changed = conn.execute(
        statement.on_conflict_do_update(
            constraint=approvals.primary_key,
            set_={**{name: statement.excluded[name] for name in values}, "updated_at": func.now()},
            where=approvals.c.version < statement.excluded.version,
        ).returning(approvals.c.version)
    ).scalar_one_or_none()
    if changed is None:
        current = conn.execute(
            select(approvals.c.version).where(
                approvals.c.organiser == p.organiser, approvals.c.provider == p.provider
            )
        ).scalar_one()
        # The row is locked and its version is not older than this one: superseded.
        return superseded("approval of provider", p.provider, p.version, current) or Outcome(
            "superseded", f"approval of provider {p.provider}: version {p.version} is not newer"
        )
    until = f" to {p.valid_to}" if p.valid_to is not None else ""
    return Outcome(
        "applied",
        f"provider {p.provider} approved by organiser {p.organiser} (version {p.version}) "
        f"for {_services(p.service_codes)} from {p.valid_from}{until}",
    )


def approval_problem(
    conn: Connection, organiser: str, provider: str, service_code: str, on: date
) -> str | None:
    """Why `provider` is not approved by `organiser` for `service_code` on `on`, or None if it is.

    The approval row is share-locked until commit, so a change of the approval waits for the
    assignment that relied on it (and the other way round)."""
    a: Any = raw(conn).execute(LOCK_APPROVAL, (organiser, provider)).fetchone()
    which = f"provider {provider} is not approved by organiser {organiser} for service {service_code} on {on}"
    if a is None:
        return f"{which}: it has no approval from this organiser"
    if a.service_codes is not None and service_code not in a.service_codes:
        return f"{which}: it is approved for {_services(list(a.service_codes))} only"
    if on < a.valid_from or (a.valid_to is not None and on > a.valid_to):
        until = a.valid_to.isoformat() if a.valid_to is not None else "further notice"
        return f"{which}: its approval is valid from {a.valid_from} to {until}"
    return None
