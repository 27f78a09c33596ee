"""Retention: nothing in the message store expires by itself; `hub purge --older-than DAYS` removes
what is resolved and old, and says what it removed.

Resolved means applied or superseded, or replaced by an edited copy that is itself removed (the
chain of an edit goes as a whole, copies first). Failed and rejected messages, and those still in
progress, are never removed however old: they are unresolved failures an admin may replay. A
message's journey, inbox and outbox rows go with it; the service state (vouchers, deliveries,
settlements), the audit log and the replay jobs stay. Work is done in batches, one transaction
each, so a purge of millions never holds long locks. The purge itself is audited.

The service state stays, but not whose it was: a voucher whose service ended (its `valid_to`,
or a revocation's effective date) or an order whose `end_date` passed before the same cutoff has
its client's HETU masked to the birth date (`131052-****`, as everywhere else in the hub). Nothing
reads it after the decision (settlements, views and invoices never carry it), and the person's
messages are gone by then, so an old voucher is no longer a register of who received which
service. The amounts, quantities and deliveries stay for settlements and reconciliation.

Retention is a setting too: `HUB_RETENTION_DAYS` (400 by default; 0 keeps everything), which the
scheduler applies once a day with `apply_retention` (actor `scheduler`), so that payloads, which
carry HETUs, are kept only as long as replay and reconciliation need them.

Functions: `purge(engine, actor, older_than_days, dry_run=False) -> PurgeReport`,
`apply_retention(engine, retention_days) -> PurgeReport | None`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from psop_hub.hub import audit
from psop_hub.hub.database import raw, unavailable_on_outage
from psop_hub.hub.errors import InvalidInput

log = logging.getLogger(__name__)

RESOLVED = ("applied", "superseded")
SCHEDULER = "scheduler"  # the actor of the purges the scheduler runs
RETENTION_EVERY_S = 24 * 3600.0  # how often the scheduler applies the retention
BATCH = 5000

# Copies of edits are messages too: a replaced message goes only once no copy of it is left.
CANDIDATES = """
SELECT m.hub_id FROM messages m
WHERE m.updated_at < %(cutoff)s AND (
    m.status = ANY(%(resolved)s)
    OR (m.status = 'replaced' AND NOT EXISTS (SELECT 1 FROM messages c WHERE c.replay_of = m.hub_id))
)
"""
REMOVE = f"""
WITH d AS (
    DELETE FROM messages WHERE hub_id IN ({CANDIDATES} LIMIT %(batch)s FOR UPDATE OF m SKIP LOCKED)
    RETURNING hub_id, status
), j AS (
    DELETE FROM journey WHERE hub_id IN (SELECT hub_id FROM d) RETURNING 1
), i AS (
    DELETE FROM inbox WHERE hub_id IN (SELECT hub_id FROM d)
), o AS (
    DELETE FROM outbox WHERE hub_id IN (SELECT hub_id FROM d)
)
SELECT (SELECT coalesce(jsonb_object_agg(status, n), '{{}}'::jsonb)
        FROM (SELECT status, count(*) AS n FROM d GROUP BY status) s) AS removed,
       (SELECT count(*) FROM j) AS steps
"""
COUNT = """
SELECT status, count(*) AS n FROM messages WHERE updated_at < %(cutoff)s GROUP BY status
"""
CUTOFF = "SELECT now() - make_interval(days => %s) AS cutoff"

# The client of a voucher or order whose service ended before the cutoff: masked to the birth
# date. A masked HETU ends in `****`, which no real one does (its check character is [0-9A-Y]).
ERASE = """
WITH v AS (
    UPDATE vouchers SET client_hetu = left(client_hetu, 6) || '-****'
    WHERE (organiser, voucher_number) IN (
        SELECT organiser, voucher_number FROM vouchers
        WHERE right(client_hetu, 4) <> '****' AND least(valid_to, effective_end) < %(cutoff)s::date
        LIMIT %(batch)s FOR UPDATE SKIP LOCKED)
    RETURNING 1
), o AS (
    UPDATE orders SET client_hetu = left(client_hetu, 6) || '-****'
    WHERE (organiser, order_number) IN (
        SELECT organiser, order_number FROM orders
        WHERE right(client_hetu, 4) <> '****' AND end_date < %(cutoff)s::date
        LIMIT %(batch)s FOR UPDATE SKIP LOCKED)
    RETURNING 1
)
SELECT (SELECT count(*) FROM v) AS vouchers, (SELECT count(*) FROM o) AS orders
"""


@dataclass(frozen=True)
class PurgeReport:
    """What a purge removed (or, in a dry run, would remove) and what it kept of the old ones."""

    cutoff: datetime
    dry_run: bool
    removed: dict[str, int] = field(default_factory=dict)
    journey_steps: int = 0
    kept: dict[str, int] = field(default_factory=dict)
    # vouchers and orders whose service ended before the cutoff, their client's HETU masked
    erased: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """How many messages it removed."""
        return sum(self.removed.values())

    def to_json(self) -> dict[str, Any]:
        """The JSON form (the audit row's detail)."""
        return {
            "cutoff": self.cutoff.isoformat(),
            "dry_run": self.dry_run,
            "removed": self.removed,
            "journey_steps": self.journey_steps,
            "kept": self.kept,
            "clients_masked": self.erased,
        }


def _remove_batch(conn: Any, cutoff: datetime) -> tuple[dict[str, int], int] | None:
    row = raw(conn).execute(REMOVE, {"cutoff": cutoff, "resolved": list(RESOLVED), "batch": BATCH}).fetchone()
    assert row is not None
    counts = {s: int(n) for s, n in row.removed.items()}
    return (counts, int(row.steps)) if counts else None


def _erase_batch(conn: Any, cutoff: datetime) -> tuple[int, int]:
    row = raw(conn).execute(ERASE, {"cutoff": cutoff, "batch": BATCH}).fetchone()
    assert row is not None
    return int(row.vouchers), int(row.orders)


def _add(removed: dict[str, int], batch: tuple[dict[str, int], int]) -> int:
    for status, n in batch[0].items():
        removed[status] = removed.get(status, 0) + n
    return batch[1]


def purge(engine: Engine, actor: str, older_than_days: int, dry_run: bool = False) -> PurgeReport:
    """Remove resolved messages last changed more than `older_than_days` days ago, in batches;
    never a failed, rejected or unfinished one. `dry_run` only counts. Audited."""
    if older_than_days < 1:
        raise InvalidInput("older_than", "--older-than must be at least 1 day")
    with unavailable_on_outage(), engine.connect() as conn:
        cutoff = raw(conn).execute(CUTOFF, (older_than_days,)).fetchone().cutoff  # type: ignore[union-attr]
        old = {r.status: int(r.n) for r in raw(conn).execute(COUNT, {"cutoff": cutoff})}
        conn.rollback()
    removed: dict[str, int] = {}
    erased = {"vouchers": 0, "orders": 0}
    steps = 0
    if dry_run:
        # Exactly what a purge would do (edit chains too), in one transaction rolled back.
        with unavailable_on_outage(), engine.connect() as conn:
            while batch := _remove_batch(conn, cutoff):
                steps += _add(removed, batch)
            while any(masked := _erase_batch(conn, cutoff)):
                erased["vouchers"] += masked[0]
                erased["orders"] += masked[1]
            conn.rollback()
    else:
        while True:
            with unavailable_on_outage(), engine.begin() as conn:
                batch = _remove_batch(conn, cutoff)
            if not batch:
                break
            steps += _add(removed, batch)
        while True:
            with unavailable_on_outage(), engine.begin() as conn:
                masked = _erase_batch(conn, cutoff)
            if not any(masked):
                break
            erased["vouchers"] += masked[0]
            erased["orders"] += masked[1]
    kept = {s: n - removed.get(s, 0) for s, n in old.items() if n - removed.get(s, 0) > 0}
    report = PurgeReport(cutoff, dry_run, removed, steps, kept, erased)
    with unavailable_on_outage(), engine.begin() as conn:
        audit.record(
            conn,
            actor,
            audit.PURGE,
            reason=f"--older-than {older_than_days} days{' (dry run)' if dry_run else ''}",
            detail=report.to_json(),
        )
    return report


def apply_retention(engine: Engine, retention_days: int) -> PurgeReport | None:
    """The scheduler's daily purge of resolved messages older than `retention_days` (None when
    retention is off: 0). An outage raises TransientError; the next check tries again."""
    if retention_days < 1:
        return None
    report = purge(engine, SCHEDULER, retention_days)
    # Said at INFO when it removed something; a daily "removed 0" is noise (DEBUG).
    log.log(
        logging.INFO if report.total or any(report.erased.values()) else logging.DEBUG,
        "retention (%d days): removed %d resolved messages last changed before %s; kept %d "
        "unresolved; masked the client of %d vouchers and %d orders that ended before it",
        retention_days,
        report.total,
        report.cutoff.isoformat(),
        sum(report.kept.values()),
        report.erased.get("vouchers", 0),
        report.erased.get("orders", 0),
    )
    return report
