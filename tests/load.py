"""A bounded, retrying load generator for fault tests (tests/faults/, tests/containers/).

`threads` concurrent senders, each at most `rate` deliveries per second, spread over vouchers.
Each answer is recorded: 200/202 → acknowledged (message_id → hub_id); 503 or a transport error
(connection refused or reset: a process killed, a proxy without a backend) → the SAME message
(the same message_id) sent again after a pause, as a partner retries, until GIVE_UP_S; anything
else → a failure with its body. Every attempt is kept with its wall-clock times, so a test can ask
what the hub answered while a service was down.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from tests.messages import delivery

GIVE_UP_S = 90.0  # one message's retries; far above a replica's or the broker's restart
# The steady load: THREADS senders, each at most RATE deliveries per second (HUB_TEST_LOAD_*).
THREADS = int(os.environ.get("HUB_TEST_LOAD_THREADS", "8"))
RATE = float(os.environ.get("HUB_TEST_LOAD_RATE", "25"))
PLAIN_503 = "503 without problem+json"


@dataclass(frozen=True)
class Attempt:
    """One request: its message, when it was sent and answered (time.time()), and the outcome:
    the HTTP status as text, PLAIN_503, or the transport error's class name."""

    message_id: str
    began: float
    ended: float
    outcome: str


@dataclass
class Load:
    """A bounded load generator: `threads` senders, each at most `rate` deliveries per second."""

    secret: str
    vouchers: list[str]
    url: str
    threads: int = THREADS
    rate: float = RATE
    # Each sender's n-th delivery is of quantities[n % len(quantities)] hours.
    quantities: tuple[str, ...] = ("1",)
    accepted: dict[str, str] = field(default_factory=dict)  # message_id -> hub_id
    voucher_of: dict[str, str] = field(default_factory=dict)  # message_id -> voucher number
    quantity_of: dict[str, Decimal] = field(default_factory=dict)  # message_id -> hours
    failures: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)  # the transport errors retried, for the report
    retries: dict[str, int] = field(default_factory=dict)  # why -> how often
    attempts: list[Attempt] = field(default_factory=list)
    in_flight: int = 0  # requests sent and not yet answered
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    workers: list[threading.Thread] = field(default_factory=list)
    began: float = 0.0
    ended: float = 0.0

    def start(self) -> None:
        """Start the sender threads."""
        self.began = self.ended = time.monotonic()
        for _ in range(self.threads):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self.workers.append(thread)

    def finish(self) -> None:
        """Stop sending (each thread finishes the message in hand) and wait for the threads."""
        self.stop.set()
        for thread in self.workers:
            thread.join(timeout=GIVE_UP_S + 10)
        self.ended = time.monotonic()

    def report(self, what: str) -> str:
        """One line for the test's output: offered and accepted rates, retries."""
        seconds = max(1e-9, self.ended - self.began)
        return (
            f"{what}: {len(self.accepted)} accepted in {seconds:.0f}s ({len(self.accepted) / seconds:.0f}/s; "
            f"offered at most {self.threads * self.rate:.0f}/s), retries {self.retries}, "
            f"failures {len(self.failures)}"
        )

    def expected_use(self) -> dict[str, Decimal]:
        """The hours acknowledged per voucher (every voucher of the load, 0 where none)."""
        use = dict.fromkeys(self.vouchers, Decimal(0))
        for message_id in self.accepted:
            use[self.voucher_of[message_id]] += self.quantity_of[message_id]
        return use

    def between(self, began: float, ended: float) -> list[Attempt]:
        """The attempts sent at or after `began` and answered by `ended` (time.time())."""
        with self.lock:
            return [a for a in self.attempts if a.began >= began and a.ended <= ended]

    def _count(self, why: str) -> None:
        with self.lock:
            self.retries[why] = self.retries.get(why, 0) + 1

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.secret}"}
        client = httpx.Client(base_url=self.url, headers=headers, timeout=30)
        offset = len(self.workers)
        try:
            for n in itertools.count():
                if self.stop.is_set():
                    break
                began = time.monotonic()
                voucher = self.vouchers[(n * self.threads + offset) % len(self.vouchers)]
                self._send_one(client, delivery(voucher, self.quantities[n % len(self.quantities)]))
                time.sleep(max(0.0, 1 / self.rate - (time.monotonic() - began)))
        except Exception as exc:  # a sender that dies must fail the test, not thin the load
            with self.lock:
                self.failures.append(f"load thread crashed: {exc!r}")
            raise
        finally:
            client.close()

    def _post(self, client: httpx.Client, raw: dict[str, Any]) -> tuple[str, httpx.Response | None]:
        """Send once; (outcome, the answer or None), the attempt recorded."""
        with self.lock:
            self.in_flight += 1
        began = time.time()
        answer: httpx.Response | None = None
        try:
            answer = client.post("/api/v1/messages", json=raw)
        except httpx.TransportError as exc:
            outcome = type(exc).__name__
            with self.lock:
                self.seen.append(f"{time.strftime('%H:%M:%S')} {outcome}: {exc}")
        else:
            outcome = str(answer.status_code)
            problem = answer.headers.get("content-type", "").startswith("application/problem+json")
            if answer.status_code == 503 and not problem:
                outcome = PLAIN_503
        with self.lock:
            self.in_flight -= 1
            self.attempts.append(Attempt(raw["message_id"], began, time.time(), outcome))
        return outcome, answer

    def _send_one(self, client: httpx.Client, raw: dict[str, Any]) -> None:
        deadline = time.monotonic() + GIVE_UP_S
        while True:
            why, answer = self._post(client, raw)
            if answer is not None and answer.status_code in (200, 202):
                with self.lock:
                    self.accepted[raw["message_id"]] = answer.json()["hub_id"]
                    self.voucher_of[raw["message_id"]] = raw["payload"]["voucher_number"]
                    self.quantity_of[raw["message_id"]] = Decimal(raw["payload"]["quantity"])
                return
            if answer is not None and answer.status_code != 503:
                with self.lock:
                    self.failures.append(f"{raw['message_id']}: {answer.status_code} {answer.text[:300]}")
                return
            self._count(why)
            if time.monotonic() > deadline:
                with self.lock:
                    self.failures.append(f"{raw['message_id']}: gave up after {GIVE_UP_S}s ({why})")
                return
            time.sleep(0.2)
