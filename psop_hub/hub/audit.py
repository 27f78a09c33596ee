"""The audit log: who did what, when, why, to which messages; append-only (migration 0007).

Every admin action and every admin read of a message's client data writes one row, in the same
transaction as the action where there is one (a replay is never done unaudited, nor audited but
not done). The admin functions of `hub.search`, `hub.replay` and `hub.replayjobs` write their own
rows: a caller (the API, the CLI, the admin page) cannot forget to.

Functions (all plain, on an Engine or a Connection, returning dataclasses):

- `record(conn, actor, action, reason=..., hub_ids=..., job_id=..., detail=...)`: append a row
  inside the caller's transaction.
- `audit_entries(engine, actor_reading, since=, until=, actor=, action=, hub_id=, limit=, offset=)`:
  newest first, as an `AuditPage`; the read itself is audited (`audit.read`).
- `export_csv(engine, actor_reading, ...same filters...)`: the whole matching log as CSV text
  (HETUs masked), itself audited (`audit.export`).

The rows keep what an auditor needs (an edit's payload before and after, unmasked); every way
out of the log (`AuditEntry.to_json`, the CSV) masks HETUs.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import any_, func, insert, literal, select
from sqlalchemy.engine import Connection, Engine

from psop_hub.hub.database import unavailable_on_outage
from psop_hub.hub.privacy import mask_text
from psop_hub.hub.tables import audit_log

# The actions written, one constant each so that readers and writers agree.
MESSAGE_READ = "message.read"
MESSAGE_REPLAY = "message.replay"
MESSAGE_REPLAY_EDITED = "message.replay_edited"
BULK_DRY_RUN = "replay.dry_run"
BULK_START = "replay.start"
AUDIT_READ = "audit.read"
AUDIT_EXPORT = "audit.export"
PURGE = "purge"
ACTIONS = (
    MESSAGE_READ,
    MESSAGE_REPLAY,
    MESSAGE_REPLAY_EDITED,
    BULK_DRY_RUN,
    BULK_START,
    AUDIT_READ,
    AUDIT_EXPORT,
    PURGE,
)
MAX_PAGE = 1000
CSV_COLUMNS = ("id", "at", "actor", "action", "reason", "hub_ids", "job_id", "detail")


def record(
    conn: Connection,
    actor: str,
    action: str,
    *,
    reason: str = "",
    hub_ids: Sequence[uuid.UUID] = (),
    job_id: uuid.UUID | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one audit row inside the caller's transaction."""
    conn.execute(
        insert(audit_log).values(
            actor=actor,
            action=action,
            reason=reason,
            hub_ids=list(hub_ids),
            job_id=job_id,
            detail=detail or {},
        )
    )


def masked(value: Any) -> Any:
    """A JSON value with every HETU-shaped string in it masked (keys too)."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {mask_text(str(k)): masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


@dataclass(frozen=True)
class AuditEntry:
    """One row of the audit log."""

    id: int
    at: datetime
    actor: str
    action: str
    reason: str
    hub_ids: list[uuid.UUID]
    job_id: uuid.UUID | None
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The JSON form the API answers (HETUs masked)."""
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "reason": mask_text(self.reason),
            "hub_ids": [str(h) for h in self.hub_ids],
            "job_id": None if self.job_id is None else str(self.job_id),
            "detail": masked(self.detail),
        }


@dataclass(frozen=True)
class AuditPage:
    """A page of the audit log, newest first, and how many rows match in all."""

    total: int
    limit: int
    offset: int
    entries: list[AuditEntry] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The JSON form the API answers."""
        return {
            "total": self.total,
            "limit": self.limit,
            "offset": self.offset,
            "entries": [e.to_json() for e in self.entries],
        }


def _where(
    since: datetime | None,
    until: datetime | None,
    actor: str | None,
    action: str | None,
    hub_id: uuid.UUID | None,
) -> list[Any]:
    conditions: list[Any] = []
    if since is not None:
        conditions.append(audit_log.c.at >= since)
    if until is not None:
        conditions.append(audit_log.c.at < until)
    if actor:
        conditions.append(audit_log.c.actor == actor)
    if action:
        conditions.append(audit_log.c.action == action)
    if hub_id is not None:
        conditions.append(literal(hub_id) == any_(audit_log.c.hub_ids))
    return conditions


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        reason=row.reason,
        hub_ids=list(row.hub_ids),
        job_id=row.job_id,
        detail=dict(row.detail),
    )


def audit_entries(
    engine: Engine,
    actor_reading: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
    hub_id: uuid.UUID | None = None,
    limit: int = 100,
    offset: int = 0,
) -> AuditPage:
    """The audit log newest first (`since` inclusive, `until` exclusive); the read is audited."""
    limit = max(1, min(limit, MAX_PAGE))
    offset = max(0, offset)
    conditions = _where(since, until, actor, action, hub_id)
    with unavailable_on_outage(), engine.begin() as conn:
        total = conn.execute(select(func.count()).select_from(audit_log).where(*conditions)).scalar_one()
        rows = conn.execute(
            select(audit_log)
            .where(*conditions)
            .order_by(audit_log.c.at.desc(), audit_log.c.id.desc())
            .limit(limit)
            .offset(offset)
        ).all()
        record(conn, actor_reading, AUDIT_READ, detail=_filters(since, until, actor, action, hub_id))
    return AuditPage(total=total, limit=limit, offset=offset, entries=[_entry(r) for r in rows])


def _filters(
    since: datetime | None,
    until: datetime | None,
    actor: str | None,
    action: str | None,
    hub_id: uuid.UUID | None,
) -> dict[str, Any]:
    given = {
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "actor": actor,
        "action": action,
        "hub_id": str(hub_id) if hub_id else None,
    }
    return {"filter": {k: v for k, v in given.items() if v is not None}}


def csv_text(entries: Iterable[AuditEntry]) -> str:
    """Audit entries as CSV (RFC 4180, a header row; lists and details as JSON; HETUs masked)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for e in entries:
        j = e.to_json()
        writer.writerow(
            [
                j["id"],
                j["at"],
                j["actor"],
                j["action"],
                j["reason"],
                " ".join(j["hub_ids"]),
                j["job_id"] or "",
                json.dumps(j["detail"], ensure_ascii=False, sort_keys=True),
            ]
        )
    return out.getvalue()


def export_csv(
    engine: Engine,
    actor_reading: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
    hub_id: uuid.UUID | None = None,
) -> str:
    """Every matching audit row, newest first, as CSV; the export is audited first (so it lists
    itself, and an export that fails half-way is still on record)."""
    conditions = _where(since, until, actor, action, hub_id)
    with unavailable_on_outage(), engine.begin() as conn:
        record(conn, actor_reading, AUDIT_EXPORT, detail=_filters(since, until, actor, action, hub_id))
    with unavailable_on_outage(), engine.connect() as conn:
        rows = conn.execute(
            select(audit_log).where(*conditions).order_by(audit_log.c.at.desc(), audit_log.c.id.desc())
        ).all()
    return csv_text(_entry(r) for r in rows)
