"""Group commit at intake (hub.groupcommit): many requests' messages in one statement and commit,
each answered after its group commits, one request's bad data never failing the others."""

from __future__ import annotations

import asyncio
import dataclasses
import threading

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from psop_hub.adapters.intake import prepare
from psop_hub.hub import store
from psop_hub.hub.database import make_engine
from psop_hub.hub.errors import AuthenticationFailed, ConflictError, DataRejected, NotAllowed, Unavailable
from psop_hub.hub.groupcommit import Busy, GroupCommit, Intake, Stored
from psop_hub.hub.ratelimit import RateLimited
from psop_hub.hub.senders import Authenticator, add_client, digest_of, revoke_client
from psop_hub.hub.settings import Settings
from psop_hub.hub.submission import Accepted, Submission
from psop_hub.mappings.canonical import parse_message
from tests.integration.helpers import SYSTEM
from tests.messages import ORGANISER, delivery, granted, uid

IN_ORDER_RECEIVED = """
SELECT hub_id::text FROM messages WHERE hub_id = ANY(CAST(:ids AS uuid[])) ORDER BY received_at
"""


def _submission(**changes: object) -> Submission:
    item = prepare(SYSTEM, parse_message(granted(uid("GC"))), "rest")
    return dataclasses.replace(item, **changes)  # type: ignore[arg-type]


def _known(item: Submission) -> Intake:
    """An intake of a sender authenticated already (as SOAP's are)."""
    return Intake(lambda sender: item, sender=SYSTEM)


def _committer(engine: Engine, **options: int) -> GroupCommit:
    return GroupCommit(engine, Authenticator(engine), **options)


def _gathered(engine: Engine, intakes: list[Intake], group: int = 100, rate_limit: int = 0) -> list[Stored]:
    """Queue every intake before the committer starts, so that they make one group (or more of
    `group` each), then let it commit and wait for every answer."""
    intake = _committer(engine, group=group, threads=1, rate_limit=rate_limit)
    answers = [intake.submit(item) for item in intakes]
    intake.start()
    try:
        return [answer.result(timeout=30) for answer in answers]
    finally:
        intake.stop()


def _accepted(stored: list[Stored]) -> list[Accepted]:
    return [s.accepted() for s in stored]


def _commits_of(engine: Engine, hub_ids: list[str]) -> set[str]:
    """The transaction ids that stored these messages (one per commit)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT xmin::text FROM messages WHERE hub_id = ANY(CAST(:ids AS uuid[]))"), {"ids": hub_ids}
        )
        return {r[0] for r in rows}


def test_a_group_is_stored_in_one_commit_in_the_order_received(engine: Engine) -> None:
    items = [_submission() for _ in range(30)]
    accepted = _accepted(_gathered(engine, [_known(i) for i in items]))
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
    accepted = _accepted(_gathered(engine, [_known(_submission()) for _ in range(25)], group=10))
    assert len(_commits_of(engine, [str(a.hub_id) for a in accepted])) == 3


def test_a_bad_row_fails_alone_and_the_rest_of_its_group_is_stored(engine: Engine) -> None:
    good = [_submission() for _ in range(4)]
    # Past the column's 100 characters: mapping never lets that through, the database refuses it.
    bad = _submission(message_id="x" * 150)
    answers = _gathered(engine, [_known(i) for i in (good[0], good[1], bad, good[2], good[3])])
    assert isinstance(answers[2].answer, DataRejected)
    assert "SQLSTATE 22001" in str(answers[2].answer)
    stored = [answers[k].accepted() for k in (0, 1, 3, 4)]
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
    answers = _gathered(engine, [_known(first), _known(again), _known(changed)])
    assert answers[0].accepted() == Accepted(first.hub_id, duplicate=False)
    assert answers[1].accepted() == Accepted(first.hub_id, duplicate=True)
    conflict = answers[2].answer
    assert isinstance(conflict, ConflictError) and conflict.hub_id == str(first.hub_id)
    assert store.describe(engine, changed.hub_id) is None


def test_a_full_queue_answers_busy_at_once_and_keeps_what_it_holds(engine: Engine) -> None:
    intake = _committer(engine, waiting=2, threads=1)
    held = [intake.submit(_known(_submission())) for _ in range(2)]
    with pytest.raises(Busy):
        intake.submit(_known(_submission()))
    intake.start()
    try:
        assert all(not a.result(timeout=30).accepted().duplicate for a in held)
    finally:
        intake.stop()


def test_concurrent_requests_share_commits_and_each_gets_its_own_answer(engine: Engine) -> None:
    intake = _committer(engine, threads=2)
    intake.start()
    items = [_submission() for _ in range(400)]
    answers: dict[int, Accepted] = {}

    def send(k: int) -> None:
        for n in range(k, len(items), 16):
            answers[n] = intake.submit(_known(items[n])).result(timeout=60).accepted()

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
    intake = _committer(gone, threads=1)
    intake.start()
    try:
        answer = intake.submit(_known(_submission()))
        assert isinstance(answer.exception(timeout=30), Unavailable)
    finally:
        intake.stop()
        gone.dispose()


def _client(engine: Engine, role: str = "system") -> tuple[str, str]:
    name = uid("gc-client")
    if role == "system":
        secret = add_client(engine, name, "system", ORGANISER, None)
    else:
        secret = add_client(engine, name, "provider", None, "1572860-0")
    return name, secret


def _by_secret(secret: str, raw: dict[str, object]) -> Intake:
    envelope = parse_message(raw)
    return Intake(lambda sender: prepare(sender, envelope, "rest"), digest=digest_of(secret))


def test_senders_are_looked_up_in_the_group_and_each_refusal_stays_its_own(engine: Engine) -> None:
    system, system_secret = _client(engine)
    provider, provider_secret = _client(engine, "provider")
    revoked, revoked_secret = _client(engine)
    revoke_client(engine, revoked)
    mine = [granted(uid("GC")) for _ in range(3)]
    answers = _gathered(
        engine,
        [
            _by_secret(system_secret, mine[0]),
            _by_secret("not-a-secret-of-anyone", granted(uid("GC"))),
            _by_secret(revoked_secret, granted(uid("GC"))),  # refused at once, as on every request
            _by_secret(system_secret, mine[1]),
            _by_secret(provider_secret, granted(uid("GC"))),  # a provider may not grant
            _by_secret(system_secret, mine[2]),
        ],
    )
    assert [a.sender.name if a.sender else None for a in answers] == [
        system,
        None,
        None,
        system,
        provider,
        system,
    ]
    assert isinstance(answers[1].answer, AuthenticationFailed)
    assert isinstance(answers[2].answer, AuthenticationFailed)
    assert isinstance(answers[4].answer, NotAllowed)
    stored = [answers[k].accepted() for k in (0, 3, 5)]
    for accepted, raw in zip(stored, mine, strict=True):
        found = store.describe(engine, accepted.hub_id)
        assert found is not None and found["sender"] == system and found["message_id"] == raw["message_id"]
    with engine.connect() as conn:
        count = conn.execute(
            text("SELECT count(*) FROM messages WHERE sender = :n"),
            {"n": revoked},
        ).scalar_one()
    assert count == 0


def test_the_rate_limit_counts_a_group_in_turn(engine: Engine) -> None:
    _, provider_secret = _client(engine, "provider")
    raws = [delivery(uid("V"), "1") for _ in range(5)]
    answers = _gathered(engine, [_by_secret(provider_secret, r) for r in raws], rate_limit=3)
    assert [type(a.answer).__name__ for a in answers] == ["Accepted"] * 3 + ["RateLimited"] * 2
    over = answers[3].answer
    assert isinstance(over, RateLimited) and 1 <= over.retry_after_s <= 60
    # The next group goes on counting the same minute.
    again = _gathered(engine, [_by_secret(provider_secret, delivery(uid("V"), "1"))], rate_limit=3)
    assert isinstance(again[0].answer, RateLimited)


def test_a_request_that_left_before_its_commit_does_not_stop_the_committer(engine: Engine) -> None:
    intake = _committer(engine, threads=1)
    left = intake.submit(_known(_submission()))
    assert left.cancel()  # what asyncio.wrap_future does when the client disconnects
    intake.start()
    try:
        after = intake.submit(_known(_submission())).result(timeout=30)
        assert not after.accepted().duplicate
    finally:
        intake.stop()


# --- requests on an event loop (REST and SOAP): handed over per turn of the loop ------------------


def test_one_turn_of_an_event_loop_is_one_hand_over_and_each_request_gets_its_own_answer(
    engine: Engine,
) -> None:
    # 250 requests in one turn of the loop, groups of 100: three commits, each answer its own.
    intake = _committer(engine, group=100, threads=1)
    entries: list[int] = []
    real_put = intake._queue.put_nowait

    def counted(entry: object) -> None:
        entries.append(1)
        real_put(entry)  # type: ignore[arg-type]

    intake._queue.put_nowait = counted  # type: ignore[method-assign]
    items = [_submission() for _ in range(250)]

    async def send_all() -> list[Stored]:
        return await asyncio.gather(*(intake.accept_async(_known(i)) for i in items))

    intake.start()
    try:
        answers = asyncio.run(send_all())
    finally:
        intake.stop()
    assert [a.accepted().hub_id for a in answers] == [i.hub_id for i in items]
    assert len(entries) == 1  # one hand-over for the whole turn
    assert len(_commits_of(engine, [str(i.hub_id) for i in items])) == 3


def test_on_a_loop_busy_is_at_once_and_a_request_that_left_does_not_stop_the_others(engine: Engine) -> None:
    intake = _committer(engine, waiting=3, threads=1)
    items = [_submission() for _ in range(4)]

    async def send_all() -> list[object]:
        tasks = [asyncio.ensure_future(intake.accept_async(_known(i))) for i in items]
        await asyncio.sleep(0)  # every task has queued its message (or heard Busy)
        tasks[0].cancel()  # its client went away while it waited
        intake.start()
        return await asyncio.gather(*tasks, return_exceptions=True)

    try:
        answers = asyncio.run(send_all())
        assert isinstance(answers[0], asyncio.CancelledError)
        assert [a.accepted().hub_id for a in answers[1:3]] == [i.hub_id for i in items[1:3]]  # type: ignore[union-attr]
        assert isinstance(answers[3], Busy)
        # The committer lives on, and what waited is free again: a new request is stored.
        after = intake.submit(_known(_submission())).result(timeout=30)
        assert not after.accepted().duplicate
    finally:
        intake.stop()
