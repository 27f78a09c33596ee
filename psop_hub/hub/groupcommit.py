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
* Back-pressure: the queue is bounded (`waiting` messages); a request that finds it full is
  answered at once with `Busy` (503 with Retry-After), not left to wait without limit.
* Few hand-overs between threads: the requests of one turn of an event loop are handed to the
  committers together, and the answers of a group go back to that loop in one call, instead of a
  wake-up of a thread per message each way.
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
        self.waiting = waiting
        # Each entry: one message from a thread, or the messages of one turn of an event loop.
        self._queue: queue.Queue[_Entry | None] = queue.Queue()
        self._held = 0  # messages queued and not yet taken by a committer (at most `waiting`)
        self._held_lock = threading.Lock()
        self._gathering: dict[asyncio.AbstractEventLoop, list[tuple[Intake, asyncio.Future[Stored]]]] = {}
        self._workers: list[threading.Thread] = []

    def _reserve(self) -> None:
        with self._held_lock:
            if self._held >= self.waiting:
                raise Busy("the hub is taking in more messages than it can store right now; send again")
            self._held += 1

    def submit(self, intake: Intake) -> Future[Stored]:
        """Queue one message; its future gets its Stored once its group is committed, or the
        group's error (Unavailable) if the group failed whole. `Busy` at once if full."""
        self._reserve()
        answer: Future[Stored] = Future()
        self._queue.put_nowait([(intake, answer)])
        return answer

    async def accept_async(self, intake: Intake) -> Stored:
        """Store one message without holding a thread while its group commits. The requests of
        this turn of the loop are handed over together at its end (`_hand_over`)."""
        self._reserve()
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Stored] = loop.create_future()
        gathered = self._gathering.get(loop)
        if gathered is None:
            gathered = self._gathering[loop] = []
            loop.call_soon(self._hand_over, loop)
        gathered.append((intake, answer))
        return await answer

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        gathered = self._gathering.pop(loop, None)
        if gathered:
            self._queue.put_nowait(_LoopEntry(loop, gathered))

    def run(self) -> None:
        """Commit groups until an end marker arrives."""
        carry: list[_Item] = []  # taken from the queue beyond the last group's room
        while True:
            if not carry:
                first = self._queue.get()
                if first is None:
                    return
                carry = _items(first)
            items, carry = carry[: self.group], carry[self.group :]
            ended = False
            while len(items) < self.group and not carry:
                try:
                    entry = self._queue.get_nowait()
                except queue.Empty:
                    break
                if entry is None:
                    ended = True
                    break
                more = _items(entry)
                room = self.group - len(items)
                items, carry = items + more[:room], more[room:]
            self._commit(items)
            if ended:
                while carry:
                    items, carry = carry[: self.group], carry[self.group :]
                    self._commit(items)
                return

    def _commit(self, items: list[_Item]) -> None:
        with self._held_lock:
            self._held -= len(items)
        try:
            answers: Sequence[Stored | Exception] = self.store_group([i for i, _ in items])
        except Exception as exc:
            # The whole group failed (an outage, a failed commit): nothing of it is stored.
            if not isinstance(exc, Unavailable):
                log.exception("storing a group of %d messages failed", len(items))
            _answer([answer for _, answer in items], [exc] * len(items))
            return
        fresh = [
            a.answer.hub_id
            for a in answers
            if isinstance(a, Stored) and isinstance(a.answer, Accepted) and not a.answer.duplicate
        ]
        try:
            self.stored(fresh)
        except Exception:  # they are committed with their outbox rows: the relay sends them
            log.exception("handing %d stored messages to the dispatcher failed", len(fresh))
        _answer([answer for _, answer in items], answers)

    def start(self) -> None:
        """Start the committer threads."""
        for n in range(self.threads):
            thread = threading.Thread(target=self.run, name=f"hub-intake-{n}", daemon=True)
            thread.start()
            self._workers.append(thread)

    def stop(self) -> None:
        """Store what was handed over, then stop every thread."""
        for loop in list(self._gathering):
            self._hand_over(loop)
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


@dataclass(frozen=True)
class _LoopEntry:
    """The messages of one turn of an event loop, answered on that loop."""

    loop: asyncio.AbstractEventLoop
    items: list[tuple[Intake, asyncio.Future[Stored]]]


@dataclass(frozen=True)
class _Answer:
    """Where one message's answer goes: a thread's future, or a future of an event loop."""

    future: Future[Stored] | asyncio.Future[Stored]
    loop: asyncio.AbstractEventLoop | None = None


_Item = tuple[Intake, _Answer]
_Entry = list[tuple[Intake, Future[Stored]]] | _LoopEntry


def _items(entry: _Entry) -> list[_Item]:
    if isinstance(entry, _LoopEntry):
        return [(intake, _Answer(future, entry.loop)) for intake, future in entry.items]
    return [(intake, _Answer(future)) for intake, future in entry]


def _answer(answers: Sequence[_Answer], outcomes: Sequence[Stored | BaseException]) -> None:
    """Answer each request: a thread's future at once, a loop's futures in one call per loop."""
    on_loops: dict[
        asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Stored], Stored | BaseException]]
    ] = {}
    for answer, outcome in zip(answers, outcomes, strict=True):
        if answer.loop is None:
            _settle(answer.future, outcome)
        else:
            on_loops.setdefault(answer.loop, []).append((answer.future, outcome))  # type: ignore[arg-type]
    for loop, pairs in on_loops.items():
        try:
            loop.call_soon_threadsafe(_settle_on_loop, pairs)
        except RuntimeError:  # the loop is closed: its requests are gone
            log.debug("%d answers for an event loop that has closed", len(pairs))


def _settle_on_loop(pairs: list[tuple[asyncio.Future[Stored], Stored | BaseException]]) -> None:
    """On the loop: answer each request still waiting."""
    for future, outcome in pairs:
        _settle(future, outcome)


def _settle(future: Future[Stored] | asyncio.Future[Stored], outcome: Stored | BaseException) -> None:
    """Answer one request. Its future is cancelled when the client went away while it waited
    (the message may be stored all the same: a retry finds it a duplicate); answering it then
    must not stop the committer thread."""
    try:
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
    except (InvalidStateError, asyncio.InvalidStateError):
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
