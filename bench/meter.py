"""CPU per message per process, and the one table every benchmark prints its figures in.

A `CpuMeter` samples the CPU time (user + system) of groups of processes every half second in a
thread while a measurement runs: the API, the workers, the file adapter, the PostgreSQL backends
connected to the bench's own database (not the other databases on the server), RabbitMQ's
beam.smp (the whole broker: on a shared machine it serves others too), and the bench process
itself (the load generator, or the pika client of the raw limits). A process that starts during
the window counts from zero; one that ends loses at most its last half second, and one that comes
and goes between two samples is not counted at all: where an application churns its database
connections, the PostgreSQL figure is a lower bound.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType

import psutil
import psycopg

Groups = Callable[[], dict[str, list[psutil.Process]]]
COLUMNS = ("API", "workers", "files", "PostgreSQL", "RabbitMQ", "bench")


class CpuMeter:
    """CPU seconds per group over the `with` block (see the module's docstring)."""

    def __init__(self, groups: Groups, interval_s: float = 0.5) -> None:
        self.groups = groups
        self.interval_s = interval_s
        self.baseline: dict[tuple[int, float], float] = {}
        self.last: dict[tuple[int, float], tuple[str, float]] = {}
        self.started = 0.0
        self.seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._lock = threading.Lock()

    def __enter__(self) -> CpuMeter:
        self.started = time.time()
        self._sample()
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(10)
        self._sample()
        self.seconds = time.time() - self.started

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _sample(self) -> None:
        with self._lock:
            for group, processes in self.groups().items():
                for p in processes:
                    try:
                        times = p.cpu_times()
                        key = (p.pid, p.create_time())
                    except psutil.Error:
                        continue
                    total = times.user + times.system
                    if key not in self.baseline:  # a process started in the window counts from zero
                        self.baseline[key] = total if key[1] < self.started else 0.0
                    self.last[key] = (group, total)

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds per group over the window."""
        out: dict[str, float] = {}
        for key, (group, total) in self.last.items():
            out[group] = out.get(group, 0.0) + max(0.0, total - self.baseline[key])
        return out

    def ms_per(self, messages: int) -> dict[str, float]:
        """CPU milliseconds per message per group."""
        return {g: s * 1000 / max(messages, 1) for g, s in self.cpu_s().items()}


def cached(groups: Groups, every_s: float = 5.0) -> Groups:
    """`groups` looked up again only every `every_s` (finding children scans every process on
    the machine, which costs the bench CPU); the CPU times are still read at each sample."""
    memo: dict[str, list[psutil.Process]] = {}
    at = [0.0]

    def lookup() -> dict[str, list[psutil.Process]]:
        if time.monotonic() - at[0] > every_s:
            memo.clear()
            memo.update(groups())
            at[0] = time.monotonic()
        return memo

    return lookup


def me() -> psutil.Process:
    return psutil.Process()


_BEAM: list[psutil.Process] = []


def rabbitmq() -> list[psutil.Process]:
    """RabbitMQ's Erlang VM (the whole broker); looked for among all processes only when the one
    found before is gone (a scan costs the bench CPU)."""
    if not _BEAM or not all(p.is_running() for p in _BEAM):
        _BEAM[:] = [p for p in psutil.process_iter(["name"]) if p.info["name"] == "beam.smp"]
    return _BEAM


class Backends:
    """The PostgreSQL backends connected to one database (the bench's own connections left out)."""

    def __init__(self, admin_url: str, database: str, exclude: Iterable[int] = ()) -> None:
        self.conn = psycopg.connect(admin_url, autocommit=True)
        self.database = database
        self.exclude = set(exclude)
        self._cache: dict[int, psutil.Process] = {}

    def __call__(self) -> list[psutil.Process]:
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.database,)
        ).fetchall()
        out = []
        for (pid,) in rows:
            if pid in self.exclude:
                continue
            if pid not in self._cache:
                try:
                    self._cache[pid] = psutil.Process(pid)
                except psutil.Error:
                    continue
            out.append(self._cache[pid])
        return out

    def close(self) -> None:
        self.conn.close()


def hub_processes(hub_pid: int) -> dict[str, list[psutil.Process]]:
    """The children of `hub run` by component (`hub api`, `hub worker`, `hub files`), each with its
    own children (uvicorn's worker processes); the supervisor and the scheduler count as `other`."""
    groups: dict[str, list[psutil.Process]] = {"API": [], "workers": [], "files": [], "other": []}
    try:
        hub = psutil.Process(hub_pid)
        groups["other"].append(hub)
        children = hub.children()
    except psutil.Error:
        return groups
    names = {"api": "API", "worker": "workers", "files": "files"}
    for child in children:
        try:
            argv = child.cmdline()
            group = next((names[a] for a in argv if a in names), "other")
            groups[group] += [child, *child.children(recursive=True)]
        except psutil.Error:
            continue
    return groups


@dataclass
class Row:
    """One line of the table: a rate, latency percentiles where they apply, CPU ms per message."""

    name: str
    messages: int
    per_s: float
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    cpu_ms: dict[str, float] = field(default_factory=dict)
    note: str = ""


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(rows: list[Row]) -> str:
    """The rows as one fixed-width table (CPU in ms per message; `other` is the hub's supervisor
    and scheduler, or whatever else a bench measured)."""
    others = sorted({g for r in rows for g in r.cpu_ms} - set(COLUMNS))
    heads = ["measurement", "n", "per s", "p50 ms", "p95", "p99", *COLUMNS, *others, "total", "note"]
    lines = []
    for r in rows:
        cpu = [r.cpu_ms.get(c) for c in (*COLUMNS, *others)]
        total = sum(v for v in cpu if v is not None) if r.cpu_ms else None
        lines.append(
            [
                r.name,
                str(r.messages),
                f"{r.per_s:.0f}",
                _num(r.p50),
                _num(r.p95),
                _num(r.p99),
                *(_num(v, 2) for v in cpu),
                _num(total, 2),
                r.note,
            ]
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(heads[:-1])]
    out = []
    for cells in [heads, *lines]:
        first = cells[0].ljust(widths[0])
        middle = "  ".join(c.rjust(w) for c, w in zip(cells[1:-1], widths[1:], strict=True))
        out.append(f"{first}  {middle}  {cells[-1]}".rstrip())
    return "\n".join(out)


def main_of(
    doc: str | None,
    arguments: Callable[[argparse.ArgumentParser], None],
    measure: Callable[[argparse.Namespace], list[Row]],
    title: str,
) -> None:
    """A table bench's command line: parse its options, measure, print the table; Ctrl-C or
    SIGTERM leave through the bench's own clean-up and say so."""

    def main() -> int:
        parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
        arguments(parser)
        a = parser.parse_args()
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        print(f"\n== {title} (CPU: ms per message) ==", table(measure(a)), sep="\n")
        return 0

    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("interrupted; what the bench created has been removed")
