"""Group commit at intake (hub.groupcommit): many requests' messages in one statement and commit,
each answered after its group commits, one request's bad data never failing the others."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import Future

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from psop_hub.adapters.intake import prepare
from psop_hub.hub import store
from psop_hub.hub.database import make_engine
from psop_hub.hub.errors import ConflictError, DataRejected, Unavailable
from psop_hub.hub.groupcommit import Busy, GroupCommit
from psop_hub.hub.settings import Settings
from psop_hub.hub.submission import Accepted, Submission
from psop_hub.mappings.canonical import parse_message
from tests.integration.helpers import SYSTEM
from tests.messages import granted, uid

IN_ORDER_RECEIVED = """
SELECT hub_id::text FROM messages WHERE hub_id = ANY(CAST(:ids AS uuid[])) ORDER BY received_at
"""


def _submission(**changes: object) -> Submission:
    item = prepare(SYSTEM, parse_message(granted(uid("GC"))), "rest")
    return dataclasses.replace(item, **changes)  # type: ignore[arg-type]


def _gathered(engine: Engine, items: list[Submission], group: int = 100) -> list[Future[Accepted]]:
    """Queue every item before the committer starts, so that they make one group (or more of
    `group` each), then let it commit and wait for every answer."""
    intake = GroupCommit(engine, group=group, threads=1)
    answers = [intake.submit(item) for item in items]
    intake.start()
    for answer in answers:
        answer.exception(timeout=30)
    intake.stop()
    return answers


def _commits_of(engine: Engine, hub_ids: list[str]) -> set[str]:
    """The transaction ids that stored these messages (one per commit)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT xmin::text FROM messages WHERE hub_id = ANY(CAST(:ids AS uuid[]))"), {"ids": hub_ids}
        )
        return {r[0] for r in rows}


def test_a_group_is_stored_in_one_commit_in_the_order_received(engine: Engine) -> None:
    items = [_submission() for _ in range(30)]
    answers = _gathered(engine, items)
    accepted = [a.result() for a in answers]
    assert [a.hub_id for a in accepted] == [i.hub_id for i in items]
    assert not any(a.duplicate for a in accepted)
    ids = [str(a.hub_id) for a in accepted]
    assert len(_commits_of(engine, ids)) == 1
    with engine.connect() as conn:
        received = conn.execute(
            text(IN_ORDER_RECEIVED),
            {"ids": ids},
        ).scalars()
        assert list(received) == ids  # each received at its own insert, in the order handed over
        steps = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE step = 'received'), "
                "count(*) FILTER (WHERE step = 'validated'), "
                "(SELECT count(*) FROM outbox WHERE hub_id = ANY(CAST(:ids AS uuid[]))) "
                "FROM journey WHERE hub_id = ANY(CAST(:ids AS uuid[]))"
            ),
            {"ids": ids},
        ).one()
        assert tuple(steps) == (30, 30, 30)
    for item in items:
        found = store.describe(engine, item.hub_id)
        assert found is not None and found["status"] == "accepted"


def test_groups_are_at_most_the_configured_size(engine: Engine) -> None:
    answers = _gathered(engine, [_submission() for _ in range(25)], group=10)
    assert len(_commits_of(engine, [str(a.result().hub_id) for a in answers])) == 3


def test_a_bad_row_fails_alone_and_the_rest_of_its_group_is_stored(engine: Engine) -> None:
    good = [_submission() for _ in range(4)]
    # Past the column's 100 characters: mapping never lets that through, the database refuses it.
    bad = _submission(message_id="x" * 150)
    answers = _gathered(engine, [good[0], good[1], bad, good[2], good[3]])
    assert isinstance(answers[2].exception(), DataRejected)
    assert "SQLSTATE 22001" in str(answers[2].exception())
    stored = [answers[k].result() for k in (0, 1, 3, 4)]
    assert [a.hub_id for a in stored] == [g.hub_id for g in good]
    assert store.describe(engine, bad.hub_id) is None
    for item in good:
        assert store.describe(engine, item.hub_id) is not None


def test_a_duplicate_and_a_conflict_within_one_group(engine: Engine) -> None:
    first = _submission()
    again = dataclasses.replace(first, hub_id=_submission().hub_id)  # a sender's retry: same id and payload
    changed = dataclasses.replace(
        first, hub_id=_submission().hub_id, payload={**first.payload, "quantity": "99"}
    )
    answers = _gathered(engine, [first, again, changed])
    assert answers[0].result() == Accepted(first.hub_id, duplicate=False)
    assert answers[1].result() == Accepted(first.hub_id, duplicate=True)
    conflict = answers[2].exception()
    assert isinstance(conflict, ConflictError) and conflict.hub_id == str(first.hub_id)
    assert store.describe(engine, changed.hub_id) is None


def test_a_full_queue_answers_busy_at_once_and_keeps_what_it_holds(engine: Engine) -> None:
    intake = GroupCommit(engine, waiting=2, threads=1)
    held = [intake.submit(_submission()) for _ in range(2)]
    with pytest.raises(Busy):
        intake.submit(_submission())
    intake.start()
    try:
        assert all(not a.result(timeout=30).duplicate for a in held)
    finally:
        intake.stop()


def test_concurrent_requests_share_commits_and_each_gets_its_own_answer(engine: Engine) -> None:
    intake = GroupCommit(engine, threads=2)
    intake.start()
    items = [_submission() for _ in range(400)]
    answers: dict[int, Accepted] = {}

    def send(k: int) -> None:
        for n in range(k, len(items), 16):
            answers[n] = intake.submit(items[n]).result(timeout=60)

    threads = [threading.Thread(target=send, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    intake.stop()
    assert {n: a.hub_id for n, a in answers.items()} == {n: i.hub_id for n, i in enumerate(items)}
    assert len(_commits_of(engine, [str(i.hub_id) for i in items])) < len(items)


def test_a_database_outage_fails_the_group_with_unavailable() -> None:
    gone = make_engine(Settings(database_url="postgresql://root@127.0.0.1:9/none"))
    intake = GroupCommit(gone, threads=1)
    intake.start()
    try:
        answer = intake.submit(_submission())
        assert isinstance(answer.exception(timeout=30), Unavailable)
    finally:
        intake.stop()
        gone.dispose()
