"""Every benchmark in one run, one table: the raw limits, the naive stack and the hub (`make bench`).

Run from the repository root (it prints figures and asserts nothing):

    .venv/bin/python bench/run.py [--quick] [--only limits,peer,rest,soap,latency,files,replay]
                                  [--messages 3000] [--senders 32] [--preload 1000000] ...

In order, each on a vhost and database of its own (all removed at the end, also on Ctrl-C):
* `limits`: bench/limits.py, the raw pika / PostgreSQL / FastAPI limits on a quorum queue;
* `peer`: bench/peer.py, the naive FastAPI + Dramatiq + SQLAlchemy stack;
* on one `hub run` (bench/ingest.py's machinery, the hub's default settings):
  `rest`: `--messages` voucher.granted through `POST /api/v1/messages` from `--senders` senders
  (the shared async load generator, bench/loadgen.py), applied/s to the last `applied` journey
  step; with `--preload N`, N generated messages and their journeys are then stored in SQL (as
  bench/replay.py's search phase does) and `rest` runs again on the full store;
  `soap`: the same messages as SubmitVoucherDecision GRANTED through `POST /soap/v1`;
  `latency`: voucher.granted offered open loop at `--rate` msg/s for `--rate-seconds`,
  accept->applied p50/p95/p99 from the journeys;
  `files`: bench/files.py's provider CSV of `--records` deliveries dropped into the inbox;
* `replay`: bench/replay.py on a hub of its own: `--failed` failed deliveries bulk-replayed, and
  the admin search at `--stored` generated messages.

The table: throughput, latency p50/p95/p99 where it applies (HTTP for closed loop, the note says
which), CPU ms per message per process (API, workers, file adapter, the PostgreSQL backends of the
bench's database, RabbitMQ's beam.smp, the bench process: the load generator or the pika client),
then the ratios the targets of issue 14 are stated in. `--quick` scales every count down for a
look that takes a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psutil
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import files  # noqa: E402
import limits  # noqa: E402
import loadgen  # noqa: E402
import peer  # noqa: E402
import replay  # noqa: E402
from ingest import (  # noqa: E402
    HUB,
    PG_ADMIN,
    accept_to_applied_ms,
    add_client,
    free_port,
    hub_env,
    last_applied,
    pct,
    provision,
    setup,
    spawn,
    wait_final,
    wait_ready,
)
from meter import Backends, CpuMeter, Row, cached, hub_processes, me, rabbitmq, table  # noqa: E402

from tests.e2e.test_soap import decision_envelope, soap_headers  # noqa: E402
from tests.e2e.test_soap import granted as soap_granted  # noqa: E402
from tests.messages import ORGANISER, PROVIDER, granted, uid  # noqa: E402

PARTS = ("limits", "peer", "rest", "soap", "latency", "files", "replay")
FULL = {
    "messages": 3000,
    "rate_seconds": 20.0,
    "records": 100_000,
    "vouchers": 200,
    "failed": 10_000,
    "stored": 100_000,
    "repeat": 5,
}
QUICK = {
    "messages": 500,
    "rate_seconds": 5.0,
    "records": 2000,
    "vouchers": 20,
    "failed": 500,
    "stored": 10_000,
    "repeat": 2,
}
HUB_ID = re.compile(rb"HubId>([0-9a-fA-F-]{36})<")


class Hub:
    """One `hub run` of the bench's, with a system and a provider client and a CPU meter's groups."""

    def __init__(self, undo: ExitStack, lines: list[str], **extra: str) -> None:
        self.name = f"psop_bench_{uuid.uuid4().hex[:10]}"
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.db_url = PG_ADMIN.replace("/postgres", f"/{self.name}")
        self.tmp = provision(undo, self.name, lines, time.monotonic(), f"benchmark hub {self.name}")
        self.env = {**os.environ, **hub_env(self.name, port, self.tmp, **extra)}
        print(f"hub {self.name} on port {port}", flush=True)
        self.process = spawn(undo, "the hub", [*HUB, "run"], self.env, self.tmp / "hub.log")
        wait_ready(self.process, self.base)
        self.system = add_client(self.env, "bench-system", "system", "--organiser", ORGANISER)
        self.provider = add_client(self.env, "bench-provider", "provider", "--provider", PROVIDER)
        self.db = undo.enter_context(psycopg.connect(self.db_url, autocommit=True))
        self.backends = Backends(PG_ADMIN, self.name, exclude=[self.db.info.backend_pid])
        undo.callback(self.backends.close)
        self.components = cached(lambda: hub_processes(self.process.pid))
        self.warm()

    def warm(self) -> None:
        """A few messages through REST and SOAP first, each applied: connection pools filled, the
        first request's imports and compilations done (the peer is warmed up too)."""
        rest_bodies = [json.dumps(granted(uid("bench-warm"))).encode() for _ in range(50)]
        soap_bodies = [decision_envelope(soap_granted(uid("bench-warm")), self.soap) for _ in range(10)]
        rest = loadgen.send(f"{self.base}/api/v1/messages", rest_bodies, self.headers, 8)
        soap = loadgen.send(f"{self.base}/soap/v1", soap_bodies, soap_headers(), 4, ok=(200,))
        wait_final(self.db, rest_ids(rest) + soap_ids(soap), 120)

    def settle(self) -> None:
        """The store as a steady hub's is before a measurement: vacuumed and analysed, and no
        autovacuum of the last measurement's rows still running. Its CPU is in the PostgreSQL
        column, and would be counted against the next measurement (SOAP's, after REST's)."""
        self.db.execute("VACUUM (ANALYZE)")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.db.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND backend_type = 'autovacuum worker'"
        ).fetchone() != (0,):
            time.sleep(0.2)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.system}", "Content-Type": "application/json"}

    @property
    def soap(self) -> tuple[str, str]:
        return ("bench-system", self.system)

    def groups(self) -> dict[str, list[psutil.Process]]:
        return {
            **self.components(),
            "PostgreSQL": self.backends(),
            "RabbitMQ": rabbitmq(),
            "bench": [me()],
        }


def rest_ids(load: loadgen.Load) -> list[str]:
    return [str(json.loads(x.body)["hub_id"]) for x in load.answers if x.status == 202]


def soap_ids(load: loadgen.Load) -> list[str]:
    return [m.group(1).decode() for x in load.answers if x.status == 200 and (m := HUB_ID.search(x.body))]


def applied_row(
    hub: Hub, name: str, load: loadgen.Load, hub_ids: list[str], meter: CpuMeter, wait_s: float
) -> Row:
    """A row for messages sent closed loop: applied/s (first send .. last applied), HTTP latency."""
    counts = wait_final(hub.db, hub_ids, wait_s)
    last = last_applied(hub.db, hub_ids) or load.first_wall
    bad = {s: n for s, n in load.statuses.items() if s not in load.ok}
    return Row(
        name,
        counts["applied"],
        counts["applied"] / max(last - load.first_wall, 1e-9),
        load.latency_ms(50),
        load.latency_ms(95),
        load.latency_ms(99),
        load.cpu_ms(meter),
        f"applied/s end to end; accepted {load.per_s:.0f}/s; HTTP latency; "
        f"{len(load.answers) - counts['applied']} not applied{f'; answers {bad}' if bad else ''}",
    )


def rest(hub: Hub, a: argparse.Namespace, name: str) -> Row:
    bodies = [json.dumps(granted(uid("bench-v"))).encode() for _ in range(a.messages)]
    print(f"{name}: {a.messages} voucher.granted from {a.senders} senders", flush=True)
    with CpuMeter(hub.groups) as meter:
        load = loadgen.send(f"{hub.base}/api/v1/messages", bodies, hub.headers, a.senders)
        ids = rest_ids(load)
        wait_final(hub.db, ids, a.wait)
    return applied_row(hub, name, load, ids, meter, a.wait)


def soap(hub: Hub, a: argparse.Namespace) -> Row:
    bodies = [decision_envelope(soap_granted(uid("bench-s")), hub.soap) for _ in range(a.messages)]
    print(f"hub SOAP: {a.messages} SubmitVoucherDecision GRANTED from {a.senders} senders", flush=True)
    with CpuMeter(hub.groups) as meter:
        load = loadgen.send(f"{hub.base}/soap/v1", bodies, soap_headers(), a.senders, ok=(200,))
        ids = soap_ids(load)
        wait_final(hub.db, ids, a.wait)
    return applied_row(hub, "hub SOAP: voucher.granted", load, ids, meter, a.wait)


def latency(hub: Hub, a: argparse.Namespace) -> Row:
    n = int(a.rate * a.rate_seconds)
    bodies = [json.dumps(granted(uid("bench-r"))).encode() for _ in range(n)]
    print(f"hub latency: {a.rate:g} msg/s offered for {a.rate_seconds:g} s", flush=True)
    with CpuMeter(hub.groups) as meter:
        load = loadgen.send(f"{hub.base}/api/v1/messages", bodies, hub.headers, a.senders, rate=a.rate)
        ids = rest_ids(load)
        counts = wait_final(hub.db, ids, a.wait)
    ms = accept_to_applied_ms(hub.db, ids)
    return Row(
        f"hub REST @ {a.rate:g}/s offered",
        counts["applied"],
        load.per_s,
        pct(ms, 50),
        pct(ms, 95),
        pct(ms, 99),
        load.cpu_ms(meter),
        f"accept->applied latency (target p99 < 100 ms); HTTP p99 {load.latency_ms(99):.1f} ms; "
        f"max send lag {load.max_lag_s * 1000:.0f} ms; {n - counts['applied']} not applied",
    )


def file_drop(hub: Hub, a: argparse.Namespace) -> Row:
    print(f"hub files: {a.vouchers} vouchers, a CSV of {a.records} deliveries", flush=True)
    vouchers = setup(hub.base, hub.db, hub.system, a.vouchers, a.wait)
    source = hub.tmp / "toteumat.csv"
    files.write_csv(source, vouchers, a.records)
    with CpuMeter(hub.groups) as meter:
        line, rate = files.drop_and_measure(hub.tmp / "data", "bench-provider", source, hub.db, a.wait, True)
    return Row("hub files: provider CSV", a.records, rate, cpu_ms=meter.ms_per(a.records), note=line)


def preload(hub: Hub, n: int) -> str:
    print(f"preload: storing {n} generated messages and their journeys in SQL", flush=True)
    started = time.monotonic()
    total = replay.store_generated(hub.db_url, n, journeys=True)
    return f"preload: {total} messages in the store ({time.monotonic() - started:.0f} s to generate)"


def hub_rows(a: argparse.Namespace, rows: list[Row], notes: list[str]) -> None:
    lines: list[str] = []
    with ExitStack() as undo:
        hub = Hub(undo, lines)
        if "rest" in a.only:
            hub.settle()
            rows.append(rest(hub, a, "hub REST: voucher.granted"))
        if a.preload:
            notes.append(preload(hub, a.preload))
            if "rest" in a.only:
                hub.settle()
                rows.append(rest(hub, a, f"hub REST, {a.preload} stored"))
        if "soap" in a.only:
            hub.settle()
            rows.append(soap(hub, a))
        if "latency" in a.only:
            hub.settle()
            rows.append(latency(hub, a))
        if "files" in a.only:
            hub.settle()
            rows.append(file_drop(hub, a))
        lines.append("hub measurements done")


def replay_rows(a: argparse.Namespace, rows: list[Row]) -> None:
    lines: list[str] = []
    with ExitStack() as undo:
        hub = Hub(undo, lines, **replay.FAIL_FAST)
        secrets = {
            "provider": hub.provider,
            "system": hub.system,
            "admin": replay.add_client(hub.env, "bench-admin", "--role", "admin"),
        }
        if a.failed:
            line, rate = replay.replay_phase(hub.base, hub.db, secrets, a)
            rows.append(Row("hub replay: failed deliveries", a.failed, rate, note=line))
        if a.stored:
            text, ms = replay.search_phase(hub.base, hub.db_url, secrets, a)
            rows.append(
                Row(
                    f"hub admin search @ {a.stored} stored",
                    len(ms),
                    len(ms) / max(sum(ms) / 1000, 1e-9),
                    pct(ms, 50),
                    pct(ms, 95),
                    pct(ms, 99),
                    note="search latency, one at a time (target p95 < 200 ms)",
                )
            )
            lines.append(text)


def ratios(rows: list[Row]) -> list[str]:
    """The issue's targets as ratios of rows measured in this run."""
    by = {r.name: r for r in rows}

    def rate(prefix: str) -> float | None:
        return next((r.per_s for name, r in by.items() if name.startswith(prefix)), None)

    hub, naive = rate("hub REST: "), rate("peer:")
    out = []
    for label, top, bottom, target in (
        ("hub REST / raw pipeline at the same senders", hub, rate("raw pipeline, "), ">= 0.5"),
        ("hub REST / raw batched pipeline (window)", hub, rate("raw batched pipeline"), "-"),
        ("hub REST / peer (naive stack)", hub, naive, ">= 1.5"),
        ("hub SOAP / hub REST", rate("hub SOAP"), hub, ">= 0.8"),
        ("hub REST with the store preloaded / empty", rate("hub REST, "), hub, ">= 0.8"),
    ):
        if top is not None and bottom:
            out.append(f"{label}: {top / bottom:.2f}" + (f" (target {target})" if target != "-" else ""))
    if (csv := rate("hub files")) is not None:
        out.append(f"hub files: {csv:.0f} records/s applied (target >= 2000 for 100,000 records)")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--only", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}"
    )
    parser.add_argument("--quick", action="store_true", help="every count scaled down: a look in minutes")
    parser.add_argument("--messages", type=int, help="messages per throughput measurement (3000; quick 500)")
    parser.add_argument("--senders", type=int, default=32, help="concurrent senders of the load generator")
    parser.add_argument("--window", type=int, default=256, help="confirms in flight, windowed publisher")
    parser.add_argument("--rate", type=float, default=200, help="latency: msg/s offered")
    parser.add_argument("--rate-seconds", type=float, help="latency: seconds (20; quick 5)")
    parser.add_argument("--records", type=int, help="files: CSV records (100000; quick 2000)")
    parser.add_argument("--vouchers", type=int, help="files and replay: vouchers (200; quick 20)")
    parser.add_argument("--failed", type=int, help="replay: failed messages (10000; quick 500; 0 skips)")
    parser.add_argument("--stored", type=int, help="replay: messages for the search (100000; quick 10000)")
    parser.add_argument("--repeat", type=int, help="replay: times each search is sent (5; quick 2)")
    parser.add_argument("--preload", type=int, default=0, help="store N messages with journeys, rest again")
    parser.add_argument("--wait", type=float, default=600, help="max seconds to wait for a state")
    a = parser.parse_args()
    for key, value in (QUICK if a.quick else FULL).items():
        if getattr(a, key) is None:
            setattr(a, key, value)
    a.only = {p.strip() for p in a.only.split(",") if p.strip()}
    if unknown := a.only - set(PARTS):
        parser.error(f"--only: unknown {sorted(unknown)}; choose from {','.join(PARTS)}")
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    started = time.monotonic()
    rows: list[Row] = []
    notes: list[str] = []
    try:
        if "limits" in a.only:
            rows += limits.measure(a)
        if "peer" in a.only:
            rows += peer.measure(a)
        if a.only & {"rest", "soap", "latency", "files"}:
            hub_rows(a, rows, notes)
        if "replay" in a.only:
            replay_rows(a, rows)
    finally:
        print_all(rows, notes, started, a)
    return 0


def print_all(rows: list[Row], notes: list[str], started: float, a: Any) -> None:
    load = ", ".join(f"{x:.1f}" for x in psutil.getloadavg())
    print(
        f"\n== psop-hub benchmarks ({'quick' if a.quick else 'full'}, {psutil.cpu_count()} cores, "
        f"load average {load}, {time.monotonic() - started:.0f} s) ==",
        "per s: msg/s (files: records/s); p50/p95/p99 in ms; then CPU ms per message per process: "
        "bench = the load generator (limits: the pika client), PostgreSQL = the backends of the "
        "bench's database, RabbitMQ = the whole beam.smp (shared with anything else on the broker)",
        table(rows),
        *notes,
        *ratios(rows),
        sep="\n",
    )


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("interrupted; what the bench created has been removed")
