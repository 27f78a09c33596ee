"""Group commit at intake: the messages of many concurrent requests stored in one transaction.

A request (REST or SOAP, on the event loop) hands its validated `Submission` to the intake
queue and awaits its own answer, holding no thread meanwhile; a committer thread takes what has
gathered (at most `group` at once), stores it in one statement and one commit
(`store.accept_rows`), and only then answers each request: promise 1 holds for each message as
it did alone, committed before the sender hears `202`, and a process killed mid-group has
answered none of the group.

* Back-pressure: the queue is bounded; a request that finds it full is answered at once with
  `Busy` (503 with Retry-After), not left to wait without limit.
* One request's bad data never fails the others: if the group's statement meets a data error
  (a value the columns cannot hold), the group is stored again one message at a time, each in a
  savepoint of its own, and only the bad one gets the error.
* A database outage fails the group's requests with `Unavailable` (503): nothing of it is
  stored, and the senders send again (the same message_id: a duplicate is harmless).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future

from sqlalchemy.engine import Connection, Engine

from psop_hub.hub import store
from psop_hub.hub.database import bad_data, is_unavailable, raw, unavailable_on_outage
from psop_hub.hub.errors import ConflictError, Unavailable
from psop_hub.hub.submission import Accepted, Submission

log = logging.getLogger(__name__)

Answer = Accepted | ConflictError | Exception


class Busy(Unavailable):
    """The intake queue is full: the sender should try again in a moment."""


class GroupCommit:
    """Stores submissions from any thread in shared transactions, answering each after its commit."""

    def __init__(self, engine: Engine, *, group: int = 100, waiting: int = 2000, threads: int = 2) -> None:
        self.engine = engine
        self.group = group
        self.threads = threads
        self._queue: queue.Queue[tuple[Submission, Future[Accepted]] | None] = queue.Queue(maxsize=waiting)
        self._workers: list[threading.Thread] = []

    def submit(self, submission: Submission) -> Future[Accepted]:
        """Queue one message; its future gets the answer (Accepted) or the error (ConflictError,
        a data error, Unavailable) once its group is committed or has failed. `Busy` if full."""
        answer: Future[Accepted] = Future()
        try:
            self._queue.put_nowait((submission, answer))
        except queue.Full:
            raise Busy("the hub is taking in more messages than it can store right now; send again") from None
        return answer

    async def accept_async(self, submission: Submission) -> Accepted:
        """Store one message without holding a thread while its group commits; raises as
        `store.accept` does, or `Busy`."""
        return await asyncio.wrap_future(self.submit(submission))

    def run(self) -> None:
        """Commit groups until an end marker arrives."""
        while True:
            first = self._queue.get()
            if first is None:
                return
            items = [first]
            ended = False
            while len(items) < self.group:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    ended = True
                    break
                items.append(item)
            self._commit(items)
            if ended:
                return

    def _commit(self, items: list[tuple[Submission, Future[Accepted]]]) -> None:
        try:
            answers = store_group(self.engine, [s for s, _ in items])
        except Exception as exc:
            # The whole group failed (an outage, a failed commit): nothing of it is stored.
            if not isinstance(exc, Unavailable):
                log.exception("storing a group of %d messages failed", len(items))
            answers = [exc] * len(items)
        for (_, future), answer in zip(items, answers, strict=True):
            if isinstance(answer, Accepted):
                future.set_result(answer)
            else:
                future.set_exception(answer)

    def start(self) -> None:
        """Start the committer threads."""
        for n in range(self.threads):
            thread = threading.Thread(target=self.run, name=f"hub-intake-{n}", daemon=True)
            thread.start()
            self._workers.append(thread)

    def stop(self) -> None:
        """Store what was handed over, then stop every thread."""
        for _ in self._workers:
            self._queue.put(None)
        for thread in self._workers:
            thread.join(timeout=30)
        self._workers.clear()


def store_group(engine: Engine, submissions: Sequence[Submission]) -> list[Answer]:
    """Store a group in one transaction; each gets Accepted, its ConflictError, or (alone) the
    data error its own values caused."""
    with unavailable_on_outage(), engine.begin() as conn:
        cur = raw(conn)
        cur.execute("SAVEPOINT whole")
        try:
            return list(store.accept_rows(conn, submissions))
        except Exception as exc:
            if is_unavailable(exc) or bad_data(exc) is None:
                raise
            cur.execute("ROLLBACK TO SAVEPOINT whole")
        return [_alone(conn, item) for item in submissions]


def _alone(conn: Connection, item: Submission) -> Answer:
    cur = raw(conn)
    cur.execute("SAVEPOINT one")
    try:
        answer: Answer = store.accept_in(conn, item)
    except Exception as exc:
        rejected = bad_data(exc)
        if is_unavailable(exc) or rejected is None:
            raise
        cur.execute("ROLLBACK TO SAVEPOINT one")
        return rejected
    cur.execute("RELEASE SAVEPOINT one")
    return answer
