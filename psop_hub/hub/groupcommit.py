"""Group commit at intake: the messages of many concurrent requests stored in one transaction.

A request (REST or SOAP, on the event loop) hands its validated `Submission` to the intake
queue and awaits its own answer, holding no thread meanwhile; a committer thread takes what has
gathered (at most `group` at once), stores it in one statement and one commit
(`store.accept_rows`), and only then answers each request: promise 1 holds for each message as
it did alone, committed before the sender hears `202`, and a process killed mid-group has
answered none of the group.

* Authentication too: a REST request hands over its bearer secret's digest, and the group looks
  every sender up in one statement inside its transaction (a revoked secret is refused at once,
  as on every request) and counts the rate limit per sender; a request whose sender is unknown,
  expired, over its limit or out of scope gets that error, and the rest of the group goes on.
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
import hmac
import logging
import queue
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass

from sqlalchemy.engine import Connection, Engine

from psop_hub.hub import store
from psop_hub.hub.database import bad_data, is_unavailable, raw, unavailable_on_outage
from psop_hub.hub.errors import ConflictError, Unavailable
from psop_hub.hub.ratelimit import count_in
from psop_hub.hub.senders import Authenticator, Sender
from psop_hub.hub.submission import Accepted, Submission

log = logging.getLogger(__name__)


class Busy(Unavailable):
    """The intake queue is full: the sender should try again in a moment."""


@dataclass(frozen=True)
class Intake:
    """One message handed to the intake: `make` gives its Submission for its sender (checking
    the sender's scope: `NotAllowed`), who is known already (`sender`) or is looked up by the
    digest of its secret (`digest`, with the client's `name` where the caller gave one) in the
    group's transaction."""

    make: Callable[[Sender], Submission]
    sender: Sender | None = None
    digest: str | None = None
    # The client's name that came with the secret (SOAP's UsernameToken, HTTP Basic): must match.
    name: str | None = None


@dataclass(frozen=True)
class Stored:
    """The answer to one Intake: its sender (None if the secret was not a client's) and the
    store's answer, or the error that refused it (unknown secret, rate limit, scope, conflict,
    bad data)."""

    sender: Sender | None
    answer: Accepted | Exception

    def accepted(self) -> Accepted:
        """The store's answer, or raise the error."""
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


class GroupCommit:
    """Stores messages from any thread in shared transactions, answering each after its commit."""

    def __init__(
        self,
        engine: Engine,
        authenticator: Authenticator,
        *,
        stored: Callable[[list[uuid.UUID]], None] = lambda hub_ids: None,
        rate_limit: int = 0,
        group: int = 100,
        waiting: int = 2000,
        threads: int = 2,
    ) -> None:
        self.engine = engine
        self.authenticator = authenticator
        # Told each committed group's new messages (the dispatcher publishes them), in one call.
        self.stored = stored
        self.rate_limit = rate_limit
        self.group = group
        self.threads = threads
        self._queue: queue.Queue[tuple[Intake, Future[Stored]] | None] = queue.Queue(maxsize=waiting)
        self._workers: list[threading.Thread] = []

    def submit(self, intake: Intake) -> Future[Stored]:
        """Queue one message; its future gets its Stored once its group is committed, or the
        group's error (Unavailable) if the group failed whole. `Busy` at once if full."""
        answer: Future[Stored] = Future()
        try:
            self._queue.put_nowait((intake, answer))
        except queue.Full:
            raise Busy("the hub is taking in more messages than it can store right now; send again") from None
        return answer

    async def accept_async(self, intake: Intake) -> Stored:
        """Store one message without holding a thread while its group commits."""
        return await asyncio.wrap_future(self.submit(intake))

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

    def _commit(self, items: list[tuple[Intake, Future[Stored]]]) -> None:
        try:
            answers = self.store_group([i for i, _ in items])
        except Exception as exc:
            # The whole group failed (an outage, a failed commit): nothing of it is stored.
            if not isinstance(exc, Unavailable):
                log.exception("storing a group of %d messages failed", len(items))
            for _, future in items:
                _settle(future, exc)
            return
        fresh = [
            a.answer.hub_id for a in answers if isinstance(a.answer, Accepted) and not a.answer.duplicate
        ]
        try:
            self.stored(fresh)
        except Exception:  # they are committed with their outbox rows: the relay sends them
            log.exception("handing %d stored messages to the dispatcher failed", len(fresh))
        for (_, future), answer in zip(items, answers, strict=True):
            _settle(future, answer)

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

    def store_group(self, intakes: Sequence[Intake]) -> list[Stored]:
        """Authenticate, count and store a group in one transaction."""
        with unavailable_on_outage(), self.engine.begin() as conn:
            senders = self._senders(conn, intakes)
            over = self._rate_limited(conn, intakes, senders)
            pending: list[tuple[Sender | None, Submission | Exception]] = []
            for intake, sender, limited in zip(intakes, senders, over, strict=True):
                if isinstance(sender, Exception):
                    pending.append((None, sender))
                elif limited is not None:
                    pending.append((sender, limited))
                else:
                    try:
                        pending.append((sender, intake.make(sender)))
                    except Exception as exc:  # out of its scope: NotAllowed
                        pending.append((sender, exc))
            ready = [p for _, p in pending if isinstance(p, Submission)]
            stored = iter(_store(conn, ready))
            return [Stored(s, next(stored) if isinstance(p, Submission) else p) for s, p in pending]

    def _senders(self, conn: Connection, intakes: Sequence[Intake]) -> list[Sender | Exception]:
        digests = [i.digest for i in intakes if i.sender is None and i.digest is not None]
        found = self.authenticator.found_in(conn, digests) if digests else {}
        senders: list[Sender | Exception] = []
        for intake in intakes:
            if intake.sender is not None:
                senders.append(intake.sender)
                continue
            match = found.get(intake.digest or "")
            if match is not None and intake.name is not None and not _same(match.sender.name, intake.name):
                match = None
            try:
                senders.append(self.authenticator.sender_of(match))
            except Exception as exc:  # AuthenticationFailed, SecretExpired
                senders.append(exc)
        return senders

    def _rate_limited(
        self, conn: Connection, intakes: Sequence[Intake], senders: list[Sender | Exception]
    ) -> list[Exception | None]:
        """The rate limit of the requests whose sender was looked up here (a known sender's was
        counted when it was authenticated), each sender's counted in one statement."""
        looked_up = [
            s.name if isinstance(s, Sender) and i.sender is None else None
            for i, s in zip(intakes, senders, strict=True)
        ]
        per_sender = Counter(name for name in looked_up if name is not None)
        if self.rate_limit <= 0 or not per_sender:
            return [None] * len(intakes)
        verdicts = {name: iter(count_in(conn, name, n, self.rate_limit)) for name, n in per_sender.items()}
        return [None if name is None else next(verdicts[name]) for name in looked_up]


def _settle(future: Future[Stored], outcome: Stored | BaseException) -> None:
    """Answer one request. Its future is cancelled when the client went away while it waited
    (the message may be stored all the same: a retry finds it a duplicate); answering it then
    must not stop the committer thread."""
    try:
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
    except InvalidStateError:
        log.debug("a request left before its group was committed")


def _same(name: str, given: str) -> bool:
    return hmac.compare_digest(name.encode(), given.encode())


def _store(conn: Connection, submissions: Sequence[Submission]) -> list[Accepted | Exception]:
    """Store the group's valid messages in one statement; each gets Accepted, its ConflictError,
    or (alone) the data error its own values caused."""
    if not submissions:
        return []
    cur = raw(conn)
    cur.execute("SAVEPOINT whole")
    try:
        return list(store.accept_rows(conn, submissions))
    except Exception as exc:
        if is_unavailable(exc) or bad_data(exc) is None:
            raise
        cur.execute("ROLLBACK TO SAVEPOINT whole")
    return [_alone(conn, item) for item in submissions]


def _alone(conn: Connection, item: Submission) -> Accepted | Exception:
    cur = raw(conn)
    cur.execute("SAVEPOINT one")
    try:
        answer: Accepted | ConflictError = store.accept_in(conn, item)
    except Exception as exc:
        rejected = bad_data(exc)
        if is_unavailable(exc) or rejected is None:
            raise
        cur.execute("ROLLBACK TO SAVEPOINT one")
        return rejected
    cur.execute("RELEASE SAVEPOINT one")
    return answer
