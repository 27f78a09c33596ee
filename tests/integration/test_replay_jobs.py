"""Bulk replay jobs (hub.replayjobs) against the real database: the dry run freezes the set it
counts, the job replays exactly that set guarded by each message's status then, two runners never
do one item twice, a job whose runner died is resumed where its last chunk ended."""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from psop_hub.consumers.apply import apply, record_failure
from psop_hub.hub import audit, replay, replayjobs
from psop_hub.hub.errors import ConflictError, InvalidInput, Waiting
from psop_hub.hub.search import MessageFilter
from psop_hub.hub.tables import audit_log, journey, replay_job_items, replay_jobs
from tests.integration.helpers import PROVIDER_SENDER, status_of, stored, voucher_row
from tests.messages import assigned, delivery, granted, uid


def _failed(engine: Engine, number: str, count: int) -> list[uuid.UUID]:
    """Deliveries against a voucher that has not arrived, given up on after their attempts."""
    ids = []
    for _ in range(count):
        hub_id = stored(engine, delivery(number, "1"), PROVIDER_SENDER)
        with pytest.raises(Waiting):
            apply(engine, hub_id, 1)
        record_failure(engine, hub_id, 5, f"voucher {number} has not arrived yet")
        ids.append(hub_id)
    return ids


def _replayed_steps(engine: Engine, ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(journey.c.hub_id, func.count())
            .where(journey.c.hub_id.in_(ids), journey.c.step == "replayed")
            .group_by(journey.c.hub_id)
        ).all()
    return {h: n for h, n in rows}


def test_the_job_replays_exactly_the_set_the_dry_run_counted(engine: Engine) -> None:
    number = uid("V")
    ids = _failed(engine, number, 30)
    flt = MessageFilter(q=number, statuses=("failed",))
    with pytest.raises(InvalidInput):
        replayjobs.plan_replay(engine, "admin-anna", flt, "  ")
    plan = replayjobs.plan_replay(engine, "admin-anna", flt, "the voucher came late", sample=5)
    assert plan.matched == 30 and plan.statuses == {"failed": 30} and len(plan.sample) == 5
    assert all(status_of(engine, h).status == "failed" for h in ids)  # a dry run replays nothing

    later = _failed(engine, number, 1)  # fails after the count: not in the frozen set
    first = ids[0]
    replay.replay_message(engine, "admin-bob", first, "one by hand")
    for raw in (granted(number), assigned(number)):
        apply(engine, stored(engine, raw), 1)
    assert apply(engine, first, 1).status == "applied"

    job = replayjobs.start_replay(engine, "admin-anna", "confirmed", plan_id=plan.plan_id, runner="r1")
    assert job.matched == 30 and job.status == "queued"
    with pytest.raises(ConflictError):
        replayjobs.start_replay(engine, "admin-anna", "again", plan_id=plan.plan_id)
    seen: list[int] = []
    done = replayjobs.run_job(engine, job.job_id, "r1", None, lambda j: seen.append(j.done), chunk=7)
    assert (done.status, done.matched, done.queued, done.skipped_applied, done.skipped_changed) == (
        "done",
        30,
        29,
        1,
        0,
    )
    assert seen == sorted(seen) and seen[-1] == 30 and len(seen) >= 5
    assert status_of(engine, later[0]).status == "failed"
    for hub_id in ids:
        apply(engine, hub_id, 1)
    assert voucher_row(engine, number).quantity_used == Decimal("30.00")
    assert replayjobs.job_status(engine, job.job_id).outcomes == {"applied": 29}
    assert set(_replayed_steps(engine, ids).values()) == {1}
    with engine.connect() as conn:
        actions = conn.execute(
            select(audit_log.c.action, audit_log.c.actor, audit_log.c.reason)
            .where(audit_log.c.job_id == job.job_id)
            .order_by(audit_log.c.id)
        ).all()
    assert [tuple(a) for a in actions] == [
        (audit.BULK_DRY_RUN, "admin-anna", "the voucher came late"),
        (audit.BULK_START, "admin-anna", "confirmed"),
    ]
    # a replay of the now applied set does nothing, and says so
    again = replayjobs.start_replay(engine, "admin-anna", "again", MessageFilter(q=number), runner="r2")
    assert again.matched == 1  # only the one that failed after the count is still failed
    assert replayjobs.run_job(engine, again.job_id, "r2", None).queued == 1


def test_two_runners_never_replay_one_message_twice(engine: Engine) -> None:
    number = uid("V")
    ids = _failed(engine, number, 60)
    job = replayjobs.start_replay(engine, "admin-anna", "both at once", MessageFilter(q=number))
    runners = [replayjobs.ReplayRunner(engine, None, budget_s=30) for _ in range(2)]
    for r in runners:  # tiny chunks, so that both get to work on it
        r.run_once = lambda r=r: _work_small(r)  # type: ignore[method-assign]
    threads = [threading.Thread(target=r.run_once) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    status = replayjobs.job_status(engine, job.job_id)
    assert (status.status, status.queued, status.done) == ("done", 60, 60)
    assert _replayed_steps(engine, ids) == dict.fromkeys(ids, 1)


def _work_small(runner: replayjobs.ReplayRunner) -> int:
    job_id = replayjobs.claim(runner.engine, runner.name)
    if job_id is not None:
        replayjobs.run_job(runner.engine, job_id, runner.name, None, chunk=5)
    return 1


def test_a_job_whose_runner_died_is_resumed_by_another(engine: Engine) -> None:
    number = uid("V")
    ids = _failed(engine, number, 12)
    job = replayjobs.start_replay(engine, "admin-anna", "resume", MessageFilter(q=number), runner="dead")
    assert replayjobs.run_chunk(engine, job.job_id, "dead", None, chunk=5)
    # the runner is gone: nobody else may take the job while its lease runs ...
    assert replayjobs.claim(engine, "other") != job.job_id
    with engine.begin() as conn:  # ... and then it has run out
        conn.execute(
            update(replay_jobs).where(replay_jobs.c.job_id == job.job_id).values(lease_until=func.now())
        )
    assert not replayjobs.run_chunk(engine, job.job_id, "other", None)  # not its job yet
    claimed = {replayjobs.claim(engine, "other") for _ in range(3)}
    assert job.job_id in claimed
    assert not replayjobs.run_chunk(engine, job.job_id, "dead", None)  # the old runner is out
    done = replayjobs.run_job(engine, job.job_id, "other", None, chunk=5)
    assert (done.status, done.queued) == ("done", 12)
    assert _replayed_steps(engine, ids) == dict.fromkeys(ids, 1)
    with engine.connect() as conn:
        pending = conn.execute(
            select(func.count()).where(
                replay_job_items.c.job_id == job.job_id, replay_job_items.c.outcome.is_(None)
            )
        ).scalar_one()
    assert pending == 0


class _Recorder:
    """Stands in for the publisher: records what each chunk published, in order."""

    def __init__(self) -> None:
        self.published: list[uuid.UUID] = []

    def try_publish(self, hub_ids: list[uuid.UUID]) -> bool:
        self.published.extend(hub_ids)
        return True


def test_a_job_replays_voucher_by_voucher_each_in_the_order_received(engine: Engine) -> None:
    """Failed deliveries for two vouchers, received interleaved, go out grouped by voucher and
    in received order within each: a voucher's deliveries then use its quantity in the order the
    provider sent them, and the workers' batches do not all wait on the same voucher rows."""
    first, second = sorted([uid("V"), uid("V")])
    ids: dict[str, list[uuid.UUID]] = {first: [], second: []}
    with engine.connect() as conn:
        since = conn.execute(select(func.now())).scalar_one()
    for _ in range(6):
        for number in (second, first):
            ids[number] += _failed(engine, number, 1)
    flt = MessageFilter(statuses=("failed",), sender=PROVIDER_SENDER.name, since=since)
    job = replayjobs.start_replay(engine, "admin-anna", "vouchers came", flt=flt, runner="r1")
    recorder = _Recorder()
    replayjobs.run_job(engine, job.job_id, "r1", recorder, chunk=5)  # type: ignore[arg-type]
    assert recorder.published == ids[first] + ids[second]
