"""The admin search: find stored messages, count them per status, show one with its journey.

One set of functions for every admin front end (REST `/api/v1/admin/...`, the `hub messages`
commands, the admin page), each taking an Engine and returning dataclasses with `to_json()`:

- `MessageFilter(statuses=, type=, sender=, organiser=, provider=, since=, until=, q=)`: what to
  match; `MessageFilter.from_json(dict)` builds one from query or body values, raising
  `InvalidInput` naming the field at fault. `q` matches exactly a hub_id, message id, correlation
  id, voucher or order number, event id (or settlement id).
- `search_messages(engine, filter, limit=50, offset=0, counts=False) -> SearchPage`: newest first
  (received_at, then hub_id: a stable order for paging), with the total matched; `counts=True`
  adds the counts per status (as `status_counts`) from the same statement.
- `status_counts(engine, filter) -> dict[status, int]`: how many match per status, ignoring the
  filter's own statuses (the tabs of a result list); every status is present.
- Counts are exact up to `COUNT_CAP` (1,000) per status; beyond, a count shows the cap and the
  page's `total_exact` is false (the UI shows "1,000+").
- `show_message(engine, actor, hub_id, reveal=False, reason="") -> MessageDetail`: one message
  with payload, errors, journey and replay links; `NotFound` if missing. HETUs in the payload are
  masked unless `reveal`; every call writes an audit row (`message.read`), as the client-data act
  requires of any read of client data.

Texts a sender chose (ids, numbers, errors) are masked wherever a HETU could hide in them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String, func, literal_column, or_, select
from sqlalchemy.engine import Connection, Engine

from psop_hub.hub import audit
from psop_hub.hub.database import unavailable_on_outage
from psop_hub.hub.errors import FieldError, InvalidInput, NotFound, ValidationFailed
from psop_hub.hub.privacy import mask_text
from psop_hub.hub.store import STATUSES, journey_of
from psop_hub.hub.tables import messages

MAX_PAGE = 500
# Counts stop here, per status: counting every row of a million costs what a search may not.
# The failed and rejected sets an admin works on are far smaller; a bulk replay's dry run counts
# its whole set exactly.
COUNT_CAP = 1_000
# Spelled as migration 0007's index spells it, so that the planner uses it.
EVENT_ID: ColumnElement[str] = literal_column("(messages.payload ->> 'event_id')", String())


def _parse_time(name: str, value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        text = str(value)
        if "T" in text and " " in text:
            text = text.replace(" ", "+")  # a `+` left unencoded in a query string arrives as a space
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidInput(name, f"{name} must be an ISO 8601 timestamp with an offset") from None
    if parsed.tzinfo is None:
        raise InvalidInput(name, f"{name} must be an ISO 8601 timestamp with an offset")
    return parsed


def _text(name: str, value: Any) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or len(value) > 100 or not value.isprintable():
        raise InvalidInput(name, f"{name} must be text of 1-100 printable characters")
    return value


@dataclass(frozen=True)
class MessageFilter:
    """Which messages to match; empty fields match everything."""

    statuses: tuple[str, ...] = ()
    type: str | None = None
    sender: str | None = None
    organiser: str | None = None
    provider: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    q: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MessageFilter:
        """A filter from JSON or query values (`status` a list or comma-separated text); raises
        `ValidationFailed` listing every field at fault."""
        errors: list[FieldError] = []
        known = {"status", "statuses", "type", "sender", "organiser", "provider", "since", "until", "q"}
        for name in sorted(set(data) - known):
            errors.append(FieldError(name, f"unknown filter {name}"))
        raw_status = data.get("status", data.get("statuses"))
        if raw_status in (None, ""):
            statuses: tuple[str, ...] = ()
        elif isinstance(raw_status, str):
            statuses = tuple(s.strip() for s in raw_status.split(",") if s.strip())
        elif isinstance(raw_status, list) and all(isinstance(s, str) for s in raw_status):
            statuses = tuple(raw_status)
        else:
            errors.append(FieldError("status", "status must be a status or a list of them"))
            statuses = ()
        for s in statuses:
            if s not in STATUSES:
                errors.append(FieldError("status", f"unknown status; must be one of {', '.join(STATUSES)}"))
                break
        values: dict[str, Any] = {}
        for name in ("type", "sender", "organiser", "provider", "q"):
            try:
                values[name] = _text(name, data.get(name))
            except InvalidInput as exc:
                errors.extend(exc.errors)
        for name in ("since", "until"):
            try:
                values[name] = _parse_time(name, data.get(name))
            except InvalidInput as exc:
                errors.extend(exc.errors)
        if errors:
            raise ValidationFailed(errors)
        return cls(statuses=tuple(dict.fromkeys(statuses)), **values)

    def to_json(self) -> dict[str, Any]:
        """The filter as JSON (only the fields set), the form `from_json` reads back."""
        out: dict[str, Any] = {}
        if self.statuses:
            out["status"] = list(self.statuses)
        for name in ("type", "sender", "organiser", "provider", "q"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value.isoformat()
        return out

    def conditions(self, *, with_statuses: bool = True) -> list[ColumnElement[bool]]:
        """The WHERE conditions on `messages` this filter stands for."""
        m = messages.c
        where: list[ColumnElement[bool]] = []
        if with_statuses and self.statuses:
            where.append(m.status.in_(self.statuses))
        for name in ("type", "sender", "organiser", "provider"):
            value = getattr(self, name)
            if value is not None:
                where.append(m[name] == value)
        if self.since is not None:
            where.append(m.received_at >= self.since)
        if self.until is not None:
            where.append(m.received_at < self.until)
        if self.q is not None:
            keys: list[ColumnElement[bool]] = [
                m.message_id == self.q,
                m.correlation_id == self.q,
                m.reference == self.q,
                EVENT_ID == self.q,
            ]
            try:
                keys.append(m.hub_id == uuid.UUID(self.q))
            except ValueError:
                pass
            where.append(or_(*keys))
        return where


@dataclass(frozen=True)
class MessageSummary:
    """One message in a result list (no payload)."""

    hub_id: uuid.UUID
    message_id: str
    type: str
    sender: str
    status: str
    channel: str
    organiser: str | None
    provider: str | None
    reference: str | None
    correlation_id: str | None
    attempts: int
    last_error: str | None
    received_at: datetime
    updated_at: datetime
    replay_of: uuid.UUID | None

    def to_json(self) -> dict[str, Any]:
        """The JSON form (HETU-shaped text masked)."""
        return {
            "hub_id": str(self.hub_id),
            "message_id": mask_text(self.message_id),
            "type": self.type,
            "sender": self.sender,
            "status": self.status,
            "channel": self.channel,
            "organiser": self.organiser,
            "provider": self.provider,
            "reference": None if self.reference is None else mask_text(self.reference),
            "correlation_id": None if self.correlation_id is None else mask_text(self.correlation_id),
            "attempts": self.attempts,
            "last_error": None if self.last_error is None else mask_text(self.last_error),
            "received_at": self.received_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "replay_of": None if self.replay_of is None else str(self.replay_of),
        }


@dataclass(frozen=True)
class SearchPage:
    """One page of a search, the total it matched (exact up to `COUNT_CAP` per status: beyond
    that `total_exact` is false and `total` a lower bound), and where the page starts; `counts`
    per status when they were asked for."""

    total: int
    limit: int
    offset: int
    messages: list[MessageSummary] = field(default_factory=list)
    total_exact: bool = True
    counts: dict[str, int] | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON form the API answers."""
        out: dict[str, Any] = {
            "total": self.total,
            "total_exact": self.total_exact,
            "limit": self.limit,
            "offset": self.offset,
            "messages": [m.to_json() for m in self.messages],
        }
        if self.counts is not None:
            out["counts"] = self.counts
            out["count_cap"] = COUNT_CAP
        return out


SUMMARY_COLUMNS = (
    messages.c.hub_id,
    messages.c.message_id,
    messages.c.type,
    messages.c.sender,
    messages.c.status,
    messages.c.channel,
    messages.c.organiser,
    messages.c.provider,
    messages.c.reference,
    messages.c.correlation_id,
    messages.c.attempts,
    messages.c.errors,
    messages.c.received_at,
    messages.c.updated_at,
    messages.c.replay_of,
)


def _last_error(errors: list[dict[str, Any]]) -> str | None:
    if not errors:
        return None
    e = errors[-1]
    where = f"{e.get('field')}: " if e.get("field") else ""
    return f"{where}{e.get('message', '')}"


def summary_of(row: Any) -> MessageSummary:
    """A result-list entry from a row with `SUMMARY_COLUMNS`."""
    return MessageSummary(
        hub_id=row.hub_id,
        message_id=row.message_id,
        type=row.type,
        sender=row.sender,
        status=row.status,
        channel=row.channel,
        organiser=row.organiser,
        provider=row.provider,
        reference=row.reference,
        correlation_id=row.correlation_id,
        attempts=row.attempts,
        last_error=_last_error(row.errors),
        received_at=row.received_at,
        updated_at=row.updated_at,
        replay_of=row.replay_of,
    )


def capped_counts(conn: Connection, flt: MessageFilter, statuses: tuple[str, ...]) -> dict[str, int]:
    """How many messages match `flt` with each of `statuses`, each counted up to COUNT_CAP + 1
    (one statement; each count a bounded scan, so a million applied messages cost no more than
    a thousand)."""
    where = flt.conditions(with_statuses=False)
    columns = [
        select(func.count())
        .select_from(
            select(messages.c.hub_id).where(messages.c.status == s, *where).limit(COUNT_CAP + 1).subquery()
        )
        .scalar_subquery()
        .label(s)
        for s in statuses
    ]
    row = conn.execute(select(*columns)).one()
    return {s: int(row._mapping[s]) for s in statuses}


def search_in(
    conn: Connection, flt: MessageFilter, limit: int = 50, offset: int = 0, counts: bool = False
) -> SearchPage:
    """`search_messages` on an open connection."""
    limit = max(1, min(limit, MAX_PAGE))
    offset = max(0, offset)
    wanted = flt.statuses or STATUSES
    per_status = capped_counts(conn, flt, STATUSES if counts else wanted)
    rows = conn.execute(
        select(*SUMMARY_COLUMNS)
        .where(*flt.conditions())
        .order_by(messages.c.received_at.desc(), messages.c.hub_id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    matched = [min(per_status[s], COUNT_CAP) for s in wanted]
    return SearchPage(
        total=sum(matched),
        limit=limit,
        offset=offset,
        messages=[summary_of(r) for r in rows],
        total_exact=all(per_status[s] <= COUNT_CAP for s in wanted),
        counts={s: min(n, COUNT_CAP) for s, n in per_status.items()} if counts else None,
    )


def search_messages(
    engine: Engine, flt: MessageFilter, limit: int = 50, offset: int = 0, counts: bool = False
) -> SearchPage:
    """One page of the messages matching `flt`, newest first, with the total matched (and with
    `counts`, the counts per status of `status_counts`, from the same statement)."""
    with unavailable_on_outage(), engine.connect() as conn:
        return search_in(conn, flt, limit, offset, counts)


def status_counts(engine: Engine, flt: MessageFilter) -> dict[str, int]:
    """How many messages match `flt` per status (its own statuses ignored; each count exact up to
    COUNT_CAP, which it shows at most); every status is a key."""
    with unavailable_on_outage(), engine.connect() as conn:
        return {s: min(n, COUNT_CAP) for s, n in capped_counts(conn, flt, STATUSES).items()}


@dataclass(frozen=True)
class JourneyStep:
    """One step of a message's journey."""

    at: datetime
    step: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        """The JSON form (the detail masked)."""
        return {"at": self.at.isoformat(), "step": self.step, "detail": mask_text(self.detail)}


@dataclass(frozen=True)
class MessageDetail:
    """One message as an admin sees it: its summary, payload, errors, journey and replay links."""

    summary: MessageSummary
    sent_at: datetime
    payload: dict[str, Any]
    errors: list[dict[str, str]]
    journey: list[JourneyStep]
    replaced_by: list[uuid.UUID]
    revealed: bool

    def to_json(self) -> dict[str, Any]:
        """The JSON form: the status API's fields and the payload (masked unless revealed)."""
        return {
            **self.summary.to_json(),
            "sent_at": self.sent_at.isoformat(),
            "payload": self.payload if self.revealed else audit.masked(self.payload),
            "revealed": self.revealed,
            "errors": [{k: mask_text(str(v)) for k, v in e.items()} for e in self.errors],
            "journey": [s.to_json() for s in self.journey],
            "replaced_by": [str(h) for h in self.replaced_by],
        }


def load_detail(conn: Connection, hub_id: uuid.UUID, reveal: bool = False) -> MessageDetail | None:
    """A message with its journey and replay links, or None (no audit row: callers write it)."""
    row = conn.execute(
        select(*SUMMARY_COLUMNS, messages.c.sent_at, messages.c.payload).where(messages.c.hub_id == hub_id)
    ).one_or_none()
    if row is None:
        return None
    steps = journey_of(conn, hub_id)
    copies = conn.execute(
        select(messages.c.hub_id).where(messages.c.replay_of == hub_id).order_by(messages.c.received_at)
    ).scalars()
    return MessageDetail(
        summary=summary_of(row),
        sent_at=row.sent_at,
        payload=dict(row.payload),
        errors=list(row.errors),
        journey=[JourneyStep(s.at, s.step, s.detail) for s in steps],
        replaced_by=list(copies),
        revealed=reveal,
    )


def show_message(
    engine: Engine, actor: str, hub_id: uuid.UUID, *, reveal: bool = False, reason: str = ""
) -> MessageDetail:
    """One message with payload, errors and journey (HETUs masked unless `reveal`); the read is
    audited in the same transaction. `NotFound` if there is no such message."""
    with unavailable_on_outage(), engine.begin() as conn:
        detail = load_detail(conn, hub_id, reveal)
        if detail is None:
            raise NotFound(f"no message {hub_id}")
        audit.record(
            conn,
            actor,
            audit.MESSAGE_READ,
            reason=reason,
            hub_ids=[hub_id],
            detail={"revealed": reveal, "type": detail.summary.type},
        )
    return detail
