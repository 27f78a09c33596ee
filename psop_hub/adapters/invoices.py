"""Writing the Finvoice invoices of new settlements into the organisers' outboxes.

The file adapter calls `write_pending` on every round: each settlement without an invoice gets
one (atomically written, then marked). One that cannot be written yet (the provider's IBAN is
missing, say) is logged once per process with what to do, and tried again on later rounds.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from psop_hub.adapters.finvoice import write_invoice
from psop_hub.hub.database import unavailable_on_outage
from psop_hub.hub.errors import InvoiceNotPossible
from psop_hub.hub.tables import parties, settlements

log = logging.getLogger(__name__)


RETRY_BLOCKED_S = 300.0


@dataclass
class Backlog:
    """Settlements whose invoice could not be written (and when), and the newest party change
    seen: a blocked one neither starves the others nor fills the log, and is tried again every
    few minutes, or at once when invoicing details change (`hub parties set`)."""

    blocked: dict[str, float] = field(default_factory=dict)
    parties_seen: Any = None


def write_pending(engine: Engine, data_dir: Path, backlog: Backlog, limit: int = 100) -> int:
    """Write the invoices still missing; returns how many were written."""
    now = time.monotonic()
    with unavailable_on_outage(), engine.connect() as conn:
        changed = conn.execute(select(func.max(parties.c.updated_at))).scalar()
        if changed != backlog.parties_seen:
            backlog.blocked.clear()
            backlog.parties_seen = changed
        skip = [sid for sid, at in backlog.blocked.items() if now - at < RETRY_BLOCKED_S]
        pending = list(
            conn.execute(
                select(settlements.c.settlement_id)
                .where(
                    settlements.c.invoice_written_at.is_(None),
                    settlements.c.amount > 0,
                    settlements.c.settlement_id.not_in(skip),
                )
                .order_by(settlements.c.created_at)
                .limit(limit)
            ).scalars()
        )
    written = 0
    for settlement_id in pending:
        try:
            path = write_invoice(engine, settlement_id, data_dir)
        except InvoiceNotPossible as exc:
            # Waiting for an operator to add details is not an error of the hub's: a warning
            # when it is first seen (or still so after a change of details), then quiet re-checks.
            level = logging.DEBUG if settlement_id in backlog.blocked else logging.WARNING
            backlog.blocked[settlement_id] = now
            log.log(level, "invoice of settlement %s not written yet: %s", settlement_id, exc)
            continue
        with unavailable_on_outage(), engine.begin() as conn:
            conn.execute(
                update(settlements)
                .where(settlements.c.settlement_id == settlement_id)
                .values(invoice_written_at=func.now())
            )
        log.info("invoice of settlement %s written to %s", settlement_id, path)
        written += 1
    return written
