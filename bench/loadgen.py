"""The load generator every HTTP benchmark shares: an asyncio client (aiohttp) in the bench process.

`--senders` concurrent senders (default 32), each on its own keep-alive connection, either in a
closed loop (each sends its next body as soon as the answer to the last one is in: as fast as the
server goes) or open loop at a given rate (body i is due at t0 + i/rate, whatever the answers to the
earlier ones). It reports the answers, throughput, latency p50/p95/p99 and its OWN CPU per message
(the CPU time of the thread its event loop runs in, so not the CPU meter's sampling thread beside
it): on a 2-core machine the client competes with the
server for CPU, and the figures are only worth something if the client is not what limits them.
One asyncio loop costs far less CPU per request than one thread per sender (uvloop if installed).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp
from ingest import pct
from meter import CpuMeter


@dataclass
class Answer:
    """One request: its status (0: no HTTP answer at all), its body, when it was sent (wall clock,
    to compare with times in the database) and how long its answer took."""

    status: int
    body: bytes
    wall: float
    latency_s: float


@dataclass
class Load:
    """What one run of the load generator saw."""

    answers: list[Answer]
    elapsed_s: float  # first send .. last answer
    cpu_s: float  # the event loop thread's CPU over the run
    max_lag_s: float = 0.0  # open loop: the largest lag of a send behind its due time
    ok: tuple[int, ...] = (200, 202)
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def good(self) -> int:
        return sum(1 for a in self.answers if a.status in self.ok)

    @property
    def per_s(self) -> float:
        """Answered requests with a good status per second."""
        return self.good / max(self.elapsed_s, 1e-9)

    def latency_ms(self, p: float) -> float:
        return pct([a.latency_s * 1000 for a in self.answers], p)

    @property
    def cpu_ms_per_msg(self) -> float:
        return self.cpu_s * 1000 / max(len(self.answers), 1)

    def cpu_ms(self, meter: CpuMeter) -> dict[str, float]:
        """The meter's CPU ms per message per process, the bench's being the load generator's own
        (over a window that also waits for a state, the bench process polls the database)."""
        return {**meter.ms_per(len(self.answers)), "bench": self.cpu_ms_per_msg}

    @property
    def first_wall(self) -> float:
        return min((a.wall for a in self.answers), default=time.time())

    def summary(self) -> str:
        bad = {s: n for s, n in self.statuses.items() if s not in self.ok}
        return (
            f"{len(self.answers)} sent, {self.per_s:.0f}/s answered, HTTP p50 {self.latency_ms(50):.1f} ms, "
            f"p95 {self.latency_ms(95):.1f}, p99 {self.latency_ms(99):.1f}; load generator "
            f"{self.cpu_ms_per_msg:.2f} CPU ms/msg{f', other answers {bad}' if bad else ''}"
        )


def send(
    url: str,
    bodies: Sequence[bytes],
    headers: dict[str, str],
    senders: int = 32,
    rate: float | None = None,
    ok: tuple[int, ...] = (200, 202),
    timeout_s: float = 60,
) -> Load:
    """POST every body to `url` from `senders` concurrent senders; closed loop, or open loop at `rate`."""
    try:
        import uvloop

        return uvloop.run(_send(url, bodies, headers, senders, rate, ok, timeout_s))
    except ImportError:
        return asyncio.run(_send(url, bodies, headers, senders, rate, ok, timeout_s))


async def _send(
    url: str,
    bodies: Sequence[bytes],
    headers: dict[str, str],
    senders: int,
    rate: float | None,
    ok: tuple[int, ...],
    timeout_s: float,
) -> Load:
    answers: list[Answer | None] = [None] * len(bodies)
    lags = [0.0]
    connector = aiohttp.TCPConnector(limit=senders, force_close=False)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    # No cookie jar and no response decompression work that a partner's client would not do either.
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False
    ) as session:
        t0 = time.perf_counter() + 0.05
        cpu0 = time.thread_time()

        async def sender(k: int) -> None:
            for i in range(k, len(bodies), senders):
                if rate is not None:
                    delay = t0 + i / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    lags[0] = max(lags[0], -delay)
                wall, start = time.time(), time.perf_counter()
                try:
                    async with session.post(url, data=bodies[i], headers=headers) as response:
                        status, body = response.status, await response.read()
                except (TimeoutError, aiohttp.ClientError, OSError):
                    status, body = 0, b""
                answers[i] = Answer(status, body, wall, time.perf_counter() - start)

        await asyncio.gather(*(sender(k) for k in range(min(senders, len(bodies)))))
        cpu = time.thread_time() - cpu0
    done = [a for a in answers if a is not None]
    elapsed = max((a.wall + a.latency_s for a in done), default=0) - min((a.wall for a in done), default=0)
    return Load(done, elapsed, cpu, lags[0], ok, Counter(a.status for a in done))
