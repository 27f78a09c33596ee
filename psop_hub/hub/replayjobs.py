"""Bulk replay: a server-side job that replays exactly the set an admin saw counted.

The set is frozen when it is counted: a dry run (`plan_replay`) stores the matched hub_ids, each
with the status it had then, as a `planned` job and answers its id with the count and a sample;
confirming that id (`start_replay(plan_id=...)`) replays those messages and no others, whatever
arrived or changed meanwhile. Starting without a plan freezes the filter's set at that moment.
Each message is then guarded by the status it had when frozen (`hub.replay.requeue`): one that
was applied or replayed since is skipped and counted as such, never replayed twice.

The job lives in PostgreSQL and is worked through in chunks, each one transaction (the chunk's
messages requeued, their items marked, the job's counters and lease moved on), by whichever
process holds the job's lease: the API's relay thread in any replica (`ReplayRunner`), or the
`hub replay` command that started it. A process that dies leaves a lease that runs out, and the
next runner goes on where the last committed chunk ended; the job row's lock serialises chunks,
so two runners never do one item twice.

Functions (plain, on an Engine; results are dataclasses with `to_json()`):

- `plan_replay(engine, actor, filter, reason, sample=10) -> ReplayPlan` (the dry run; audited)
- `start_replay(engine, actor, reason, filter=None, plan_id=None, runner=None) -> ReplayJob`
  (audited; `runner` claims the job for the caller, who then calls `run_job`)
- `job_status(engine, job_id) -> ReplayJob` (progress, final report, and what became of the
  queued messages since)
- `run_job(engine, job_id, runner, publisher, progress=None) -> ReplayJob`: work a claimed job
  to its end; `ReplayRunner(engine, publisher).run_once()` claims and works any job that waits.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, literal, select
from sqlalchemy.engine import Connection, Engine

from psop_hub.hub import audit
from psop_hub.hub.database import raw, unavailable_on_outage
from psop_hub.hub.errors import ConflictError, InvalidInput, NotFound
from psop_hub.hub.publishing import Publisher
from psop_hub.hub.replay import REPLAYABLE, publish_now, replayed_detail, requeue, skip_reason
from psop_hub.hub.search import SUMMARY_COLUMNS, MessageFilter, MessageSummary, summary_of
from psop_hub.hub.tables import messages, replay_job_items, replay_jobs

log = logging.getLogger(__name__)

CHUNK = 500
LEASE_S = 30.0


def runner_name() -> str:
    """A name for this process as a job runner (host, pid and a random part)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class ReplayPlan:
    """A dry run: the frozen set's size, its statuses, a sample, and the id that confirms it."""

    plan_id: uuid.UUID
    matched: int
    statuses: dict[str, int]
    sample: list[MessageSummary] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The JSON form the API answers."""
        return {
            "dry_run": True,
            "plan_id": str(self.plan_id),
            "matched": self.matched,
            "statuses": self.statuses,
            "sample": [m.to_json() for m in self.sample],
        }


@dataclass(frozen=True)
class ReplayJob:
    """A bulk replay: its set, progress and (once done) its final report."""

    job_id: uuid.UUID
    status: str
    actor: str
    reason: str
    filter: dict[str, Any]
    matched: int
    queued: int
    skipped_applied: int
    skipped_changed: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    # What the queued messages are now (applied, failed again, ...), when asked for.
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def done(self) -> int:
        """How many of the set have been dealt with (queued or skipped)."""
        return self.queued + self.skipped_applied + self.skipped_changed

    def to_json(self) -> dict[str, Any]:
        """The JSON form the API answers."""
        return {
            "job_id": str(self.job_id),
            "status": self.status,
            "actor": self.actor,
            "reason": self.reason,
            "filter": self.filter,
            "matched": self.matched,
            "queued": self.queued,
            "skipped": {"already_applied": self.skipped_applied, "no_longer_failed": self.skipped_changed},
            "progress": {
                "done": self.done,
                "total": self.matched,
                "percent": 100.0 if not self.matched else round(100.0 * self.done / self.matched, 1),
            },
            "queued_now": self.outcomes,
            "created_at": self.created_at.isoformat(),
            "started_at": None if self.started_at is None else self.started_at.isoformat(),
            "finished_at": None if self.finished_at is None else self.finished_at.isoformat(),
        }


def _job(row: Any, outcomes: dict[str, int] | None = None) -> ReplayJob:
    return ReplayJob(
        job_id=row.job_id,
        status=row.status,
        actor=row.actor,
        reason=row.reason,
        filter=dict(row.filter),
        matched=row.matched,
        queued=row.queued,
        skipped_applied=row.skipped_applied,
        skipped_changed=row.skipped_changed,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        outcomes=outcomes or {},
    )


def _require_reason(reason: str) -> str:
    if not reason or not reason.strip():
        raise InvalidInput("reason", "a reason is required: say why these messages are replayed")
    return reason.strip()


def _freeze(conn: Connection, job_id: uuid.UUID, flt: MessageFilter) -> int:
    """Store the filter's replayable messages, each with its status now, as the job's items."""
    chosen = select(literal(job_id), messages.c.hub_id, messages.c.status).where(
        *flt.conditions(), messages.c.status.in_(REPLAYABLE)
    )
    conn.execute(insert(replay_job_items).from_select(["job_id", "hub_id", "status_then"], chosen))
    counted = select(func.count()).where(replay_job_items.c.job_id == job_id)
    return int(conn.execute(counted).scalar_one())


def _new_job(
    conn: Connection,
    actor: str,
    reason: str,
    flt: MessageFilter,
    status: str,
    runner: str | None = None,
) -> tuple[uuid.UUID, int]:
    job_id = uuid.uuid4()
    conn.execute(
        insert(replay_jobs).values(
            job_id=job_id, actor=actor, reason=reason, filter=flt.to_json(), status=status, runner=runner
        )
    )
    matched = _freeze(conn, job_id, flt)
    conn.execute(replay_jobs.update().where(replay_jobs.c.job_id == job_id).values(matched=matched))
    return job_id, matched


def plan_replay(engine: Engine, actor: str, flt: MessageFilter, reason: str, sample: int = 10) -> ReplayPlan:
    """The dry run: freeze the failed and rejected messages the filter matches as a `planned`
    job (nothing is replayed) and answer its id, the count per status and a sample."""
    reason = _require_reason(reason)
    with unavailable_on_outage(), engine.begin() as conn:
        plan_id, matched = _new_job(conn, actor, reason, flt, "planned")
        statuses: dict[str, int] = dict(
            conn.execute(
                select(replay_job_items.c.status_then, func.count())
                .where(replay_job_items.c.job_id == plan_id)
                .group_by(replay_job_items.c.status_then)
            ).all()
        )
        rows = conn.execute(
            select(*SUMMARY_COLUMNS)
            .select_from(messages.join(replay_job_items, replay_job_items.c.hub_id == messages.c.hub_id))
            .where(replay_job_items.c.job_id == plan_id)
            .order_by(messages.c.received_at.desc(), messages.c.hub_id.desc())
            .limit(max(0, sample))
        ).all()
        audit.record(
            conn,
            actor,
            audit.BULK_DRY_RUN,
            reason=reason,
            job_id=plan_id,
            detail={"filter": flt.to_json(), "matched": matched},
        )
    return ReplayPlan(
        plan_id, matched, {s: int(n) for s, n in statuses.items()}, [summary_of(r) for r in rows]
    )


def start_replay(
    engine: Engine,
    actor: str,
    reason: str,
    flt: MessageFilter | None = None,
    plan_id: uuid.UUID | None = None,
    runner: str | None = None,
) -> ReplayJob:
    """Start a bulk replay of a dry run's frozen set (`plan_id`), or of the filter's set frozen
    now; `runner` claims it for the caller (else any runner takes it). Audited."""
    reason = _require_reason(reason)
    if (flt is None) == (plan_id is None):
        raise InvalidInput("filter", "give either a filter or the plan_id of a dry run")
    with unavailable_on_outage(), engine.begin() as conn:
        if plan_id is not None:
            row = conn.execute(
                replay_jobs.update()
                .where(replay_jobs.c.job_id == plan_id, replay_jobs.c.status == "planned")
                .values(status="queued", reason=reason, actor=actor, runner=runner)
                .returning(replay_jobs.c.job_id, replay_jobs.c.matched, replay_jobs.c.filter)
            ).one_or_none()
            if row is None:
                raise _plan_error(conn, plan_id)
            job_id, matched, frozen = row.job_id, row.matched, dict(row.filter)
        else:
            assert flt is not None
            job_id, matched = _new_job(conn, actor, reason, flt, "queued", runner)
            frozen = flt.to_json()
        if runner is not None:
            conn.execute(
                replay_jobs.update()
                .where(replay_jobs.c.job_id == job_id)
                .values(lease_until=func.now() + _interval(LEASE_S))
            )
        audit.record(
            conn,
            actor,
            audit.BULK_START,
            reason=reason,
            job_id=job_id,
            detail={"filter": frozen, "matched": matched, "from_plan": plan_id is not None},
        )
    return job_status(engine, job_id)


def _plan_error(conn: Connection, plan_id: uuid.UUID) -> NotFound | ConflictError:
    status = conn.execute(
        select(replay_jobs.c.status).where(replay_jobs.c.job_id == plan_id)
    ).scalar_one_or_none()
    if status is None:
        return NotFound(f"no dry run {plan_id}")
    return ConflictError(f"replay {plan_id} was started already (it is {status})", str(plan_id))


def _interval(seconds: float) -> Any:
    return func.make_interval(0, 0, 0, 0, 0, 0, seconds)


OUTCOMES_NOW = """
SELECT m.status, count(*) AS n FROM replay_job_items i JOIN messages m USING (hub_id)
WHERE i.job_id = %s AND i.outcome = 'queued' GROUP BY m.status
"""


def job_status(engine: Engine, job_id: uuid.UUID) -> ReplayJob:
    """A job's progress and report, with what its queued messages are now; `NotFound`."""
    with unavailable_on_outage(), engine.connect() as conn:
        row = conn.execute(select(replay_jobs).where(replay_jobs.c.job_id == job_id)).one_or_none()
        if row is None:
            raise NotFound(f"no replay job {job_id}")
        outcomes = {r.status: int(r.n) for r in raw(conn).execute(OUTCOMES_NOW, (job_id,))}
    return _job(row, outcomes)


# --- working through a job ----------------------------------------------------------------------

CLAIM = """
UPDATE replay_jobs SET runner = %(runner)s, lease_until = now() + make_interval(secs => %(lease)s)
WHERE job_id = (
    SELECT job_id FROM replay_jobs
    WHERE status IN ('queued', 'running') AND (lease_until IS NULL OR lease_until < now() OR runner IS NULL)
    ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED
)
RETURNING job_id
"""
LOCK_JOB = "SELECT status, runner FROM replay_jobs WHERE job_id = %s FOR UPDATE"
# Voucher by voucher (the reference key), each one's messages in the order they were received:
# a voucher's deliveries then go out together in received order, and the workers' batches are
# about different vouchers instead of all waiting on the same voucher rows' locks.
PENDING = """
SELECT i.hub_id, i.status_then FROM replay_job_items i LEFT JOIN messages m USING (hub_id)
WHERE i.job_id = %s AND i.outcome IS NULL
ORDER BY m.reference NULLS LAST, m.received_at, i.hub_id LIMIT %s
"""
MARK_ITEMS = """
UPDATE replay_job_items i SET outcome = o.outcome, detail = o.detail
FROM unnest(%(ids)s::uuid[], %(outcomes)s::text[], %(details)s::text[]) AS o(hub_id, outcome, detail)
WHERE i.job_id = %(job)s AND i.hub_id = o.hub_id
"""
STATUS_NOW = "SELECT hub_id, status FROM messages WHERE hub_id = ANY(%s)"
ADVANCE = """
UPDATE replay_jobs SET queued = queued + %(queued)s, skipped_applied = skipped_applied + %(applied)s,
       skipped_changed = skipped_changed + %(changed)s,
       status = CASE WHEN %(finished)s THEN 'done' ELSE 'running' END,
       started_at = coalesce(started_at, now()),
       finished_at = CASE WHEN %(finished)s THEN now() END,
       lease_until = now() + make_interval(secs => %(lease)s)
WHERE job_id = %(job)s
"""


def claim(engine: Engine, runner: str, lease_s: float = LEASE_S) -> uuid.UUID | None:
    """Take the oldest job that waits, or whose runner's lease ran out; None if there is none."""
    with unavailable_on_outage(), engine.begin() as conn:
        row = raw(conn).execute(CLAIM, {"runner": runner, "lease": lease_s}).fetchone()
    return None if row is None else row.job_id


def run_chunk(
    engine: Engine, job_id: uuid.UUID, runner: str, publisher: Publisher | None, chunk: int = CHUNK
) -> bool:
    """Replay the next chunk of a job this runner holds, in one transaction, then publish what
    it requeued; False when the job is done (or no longer this runner's)."""
    with unavailable_on_outage(), engine.begin() as conn:
        cur = raw(conn)
        job = cur.execute(LOCK_JOB, (job_id,)).fetchone()
        if job is None or job.status not in ("queued", "running") or job.runner != runner:
            return False
        actor_reason = conn.execute(
            select(replay_jobs.c.actor, replay_jobs.c.reason).where(replay_jobs.c.job_id == job_id)
        ).one()
        pending = [(r.hub_id, r.status_then) for r in cur.execute(PENDING, (job_id, chunk))]
        detail = replayed_detail(actor_reason.actor, actor_reason.reason, job_id)
        moved = set(requeue(conn, pending, detail))
        rest = [h for h, _ in pending if h not in moved]
        now = {r.hub_id: r.status for r in cur.execute(STATUS_NOW, (rest,))} if rest else {}
        outcomes: list[tuple[uuid.UUID, str, str]] = [(h, "queued", "queued again") for h in moved]
        for h in rest:
            status = now.get(h)
            if status == "applied":
                outcomes.append((h, "skipped_applied", skip_reason(status)))
            else:
                why = skip_reason(status) if status else "no longer stored (purged)"
                outcomes.append((h, "skipped_changed", why))
        if outcomes:
            cur.execute(
                MARK_ITEMS,
                {
                    "job": job_id,
                    "ids": [o[0] for o in outcomes],
                    "outcomes": [o[1] for o in outcomes],
                    "details": [o[2] for o in outcomes],
                },
            )
        finished = len(pending) < chunk
        cur.execute(
            ADVANCE,
            {
                "job": job_id,
                "queued": len(moved),
                "applied": sum(1 for o in outcomes if o[1] == "skipped_applied"),
                "changed": sum(1 for o in outcomes if o[1] == "skipped_changed"),
                "finished": finished,
                "lease": LEASE_S,
            },
        )
    publish_now(publisher, [h for h, _ in pending if h in moved])
    return not finished


RELEASE = "UPDATE replay_jobs SET lease_until = NULL WHERE job_id = %s AND runner = %s AND status <> 'done'"


def release(engine: Engine, job_id: uuid.UUID, runner: str) -> None:
    """Let go of a job's lease, so that any runner may go on with it at once."""
    try:
        with unavailable_on_outage(), engine.begin() as conn:
            raw(conn).execute(RELEASE, (job_id, runner))
    except Exception:
        log.warning("could not release replay job %s; its lease runs out instead", job_id, exc_info=True)


def run_job(
    engine: Engine,
    job_id: uuid.UUID,
    runner: str,
    publisher: Publisher | None,
    progress: Callable[[ReplayJob], None] | None = None,
    chunk: int = CHUNK,
    until: float | None = None,
) -> ReplayJob:
    """Work a job this runner holds chunk by chunk until it is done (or `until`, a monotonic
    deadline, passes: then its lease is let go, for the next round of any runner); `progress`
    hears after every chunk. A crash or Ctrl-C lets the lease go too (or it runs out)."""
    try:
        while run_chunk(engine, job_id, runner, publisher, chunk):
            if progress is not None:
                progress(job_status(engine, job_id))
            if until is not None and time.monotonic() >= until:
                break
    finally:
        release(engine, job_id, runner)
    status = job_status(engine, job_id)
    if progress is not None:
        progress(status)
    return status


class ReplayRunner:
    """Claims bulk replay jobs that wait (or whose runner died) and works them, a few seconds a
    round; the relay thread of every API and file adapter process runs one."""

    def __init__(self, engine: Engine, publisher: Publisher | None, budget_s: float = 2.0) -> None:
        self.engine = engine
        self.publisher = publisher
        self.budget_s = budget_s
        self.name = runner_name()

    def run_once(self) -> int:
        """Work waiting jobs for up to the budget; returns how many jobs it touched."""
        until = time.monotonic() + self.budget_s
        touched = 0
        while time.monotonic() < until:
            job_id = claim(self.engine, self.name)
            if job_id is None:
                break
            touched += 1
            job = run_job(self.engine, job_id, self.name, self.publisher, until=until)
            log.info("replay job %s: %d of %d done (%s)", job_id, job.done, job.matched, job.status)
        return touched
