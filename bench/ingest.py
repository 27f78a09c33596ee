"""End-to-end ingest benchmark: a real `hub run` process, real PostgreSQL and RabbitMQ.

Run from the repository root (it prints figures and asserts nothing):

    .venv/bin/python bench/ingest.py [--senders 8] [--messages 5000] [--rate 100] [--rate-seconds 20]

It creates its own database and vhost `psop_bench_<random>`, starts `hub run` on a free port with
them, registers a system and a provider client with `hub clients add`, grants and assigns
`--vouchers` vouchers, and then measures:

* phase A, throughput: `--senders` threads (one keep-alive http.client connection each) POST `--messages`
  delivery.reported messages as fast as they can. accepted/s = messages / (first send .. last 202);
  applied/s = applied / (first send .. last `applied` journey step in the database).
* phase B, latency: `--rate` msg/s offered open-loop for `--rate-seconds` s (each message is due
  at a fixed time, whatever the answers to the earlier ones). From the database: the time from
  the `received` to the `applied` journey step per message (p50/p95/p99/max); from the client:
  the HTTP answer time (p50/p99).

Targets: >= 500 applied/s; accept->applied p99 < 250 ms at 100 msg/s. Other `HUB_*` variables in
the environment (e.g. HUB_WORKER_PROCESSES) pass through to the hub. Everything it creates (the
hub process, the database, the vhost, the data dir) is removed at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from psop_hub.hub.store import FINAL_STATUSES  # noqa: E402
from tests.messages import ORGANISER, PROVIDER, assigned, delivery, granted, uid  # noqa: E402

PG_ADMIN = "postgresql://root@127.0.0.1:5432/postgres"
AMQP = "amqp://guest:guest@127.0.0.1:5672"
HUB = [sys.executable, "-m", "psop_hub.cli"]


@dataclass
class Sent:
    """One POST: its answer and when (wall clock for the database, monotonic for durations)."""

    status: int
    hub_id: str | None
    wall: float
    latency_s: float


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def admin_sql(sql: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql)


def add_client(env: dict[str, str], name: str, role: str, flag: str, business_id: str) -> str:
    argv = [*HUB, "clients", "add", name, "--role", role, flag, business_id]
    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, check=True, timeout=60)
    return done.stdout.strip().splitlines()[-1]


def send_all(
    base: str, secret: str, bodies: list[dict[str, Any]], threads: int, rate: float | None = None
) -> tuple[list[Sent], float]:
    """POST every body from `threads` threads: as fast as possible, or body i due at t0 + i/rate.

    Returns the answers (in body order) and the largest lag of a paced send behind its due time.
    """
    results: list[Sent | None] = [None] * len(bodies)
    lags = [0.0] * threads
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    # The standard library's keep-alive client: on two cores the load generator competes with the
    # hub for CPU, and http.client costs a third of what httpx does per request.
    url = urlsplit(base)
    clients = [
        http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=60) for _ in range(threads)
    ]
    payloads = [json.dumps(b).encode() for b in bodies]
    t0 = time.perf_counter() + 0.05
    stop = threading.Event()

    def sender(k: int) -> None:
        for i in range(k, len(bodies), threads):
            if stop.is_set():
                return
            if rate is not None:
                delay = t0 + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                lags[k] = max(lags[k], -delay)
            wall, start = time.time(), time.perf_counter()
            try:
                clients[k].request("POST", "/api/v1/messages", body=payloads[i], headers=headers)
                answer = clients[k].getresponse()
                status, hub_id = answer.status, json.loads(answer.read()).get("hub_id")
            except (OSError, http.client.HTTPException, ValueError):
                clients[k].close()  # reconnects on the next request
                status, hub_id = 0, None  # 0: no HTTP answer at all
            results[i] = Sent(status, hub_id, wall, time.perf_counter() - start)

    workers = [threading.Thread(target=sender, args=(k,), daemon=True) for k in range(threads)]
    try:
        for w in workers:
            w.start()
        for w in workers:
            while w.is_alive():
                w.join(0.2)  # short joins so that Ctrl-C gets through
    finally:
        stop.set()
        for w in workers:
            w.join(5)
        for c in clients:
            c.close()
    return [r for r in results if r is not None], max(lags)


def wait_final(db: psycopg.Connection, hub_ids: list[str], timeout_s: float) -> Counter[str]:
    """Wait until every message is in a final status (or the timeout); returns the status counts."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = db.execute(
            "SELECT status, count(*) FROM messages WHERE hub_id = ANY(%s::uuid[]) GROUP BY status",
            (hub_ids,),
        ).fetchall()
        counts = Counter({status: int(n) for status, n in rows})
        if sum(n for s, n in counts.items() if s in FINAL_STATUSES) >= len(hub_ids):
            return counts
        if time.monotonic() > deadline:
            print(f"  ! gave up waiting after {timeout_s:.0f} s: {dict(counts)}", flush=True)
            return counts
        time.sleep(0.25)


def trouble(db: psycopg.Connection, sent: list[Sent], hub_ids: list[str]) -> str:
    """Answers other than 202 (0 = no answer) and messages that needed a retry before their end."""
    sql = "SELECT count(DISTINCT hub_id) FROM journey WHERE step = 'retrying' AND hub_id = ANY(%s::uuid[])"
    row = db.execute(sql, (hub_ids,)).fetchone()
    non_202 = Counter(s.status for s in sent if s.status != 202)
    detail = f" {dict(non_202)}" if non_202 else ""
    return f"non-202 {sum(non_202.values())}{detail}, retried {row[0] if row else '?'}"


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def ids_of(sent: list[Sent]) -> list[str]:
    return [s.hub_id for s in sent if s.status == 202 and s.hub_id]


def setup(base: str, db: psycopg.Connection, system: str, n: int, wait_s: float) -> list[str]:
    """Grant, then assign `n` vouchers (each step applied before the next); returns their numbers."""
    numbers = [uid("bench-v") for _ in range(n)]
    for build in (lambda v: granted(v, quantity="100000"), assigned):
        sent, _ = send_all(base, system, [build(v) for v in numbers], threads=8)
        counts = wait_final(db, ids_of(sent), wait_s)
        if counts["applied"] != n:
            raise SystemExit(f"setup failed: {dict(counts)}, answers {Counter(s.status for s in sent)}")
    return numbers


def deliveries(vouchers: list[str], n: int) -> list[dict[str, Any]]:
    """`n` delivery.reported messages of 1 hour each, spread round-robin over the vouchers."""
    cycle = itertools.cycle(vouchers)
    return [delivery(next(cycle), "1") for _ in range(n)]


def accept_to_applied_ms(db: psycopg.Connection, hub_ids: list[str]) -> list[float]:
    """From the journeys: the time from `received` to `applied` of each applied message, in ms."""
    rows = db.execute(
        "SELECT extract(epoch FROM a.at - r.at) * 1000 FROM journey r "
        "JOIN journey a ON a.hub_id = r.hub_id AND a.step = 'applied' "
        "WHERE r.step = 'received' AND r.hub_id = ANY(%s::uuid[])",
        (hub_ids,),
    ).fetchall()
    return [float(r[0]) for r in rows]


def last_applied(db: psycopg.Connection, hub_ids: list[str]) -> float | None:
    """The wall clock time of the last `applied` journey step of these messages."""
    row = db.execute(
        "SELECT extract(epoch FROM max(at)) FROM journey WHERE step = 'applied' AND hub_id = ANY(%s::uuid[])",
        (hub_ids,),
    ).fetchone()
    return float(row[0]) if row and row[0] is not None else None


def phase_a(base: str, db: psycopg.Connection, secret: str, vs: list[str], a: argparse.Namespace) -> str:
    cpu = time.process_time()
    sent, _ = send_all(base, secret, deliveries(vs, a.messages), a.senders)
    cpu = time.process_time() - cpu  # the bench's own CPU: on a small machine it competes with the hub
    first = min(s.wall for s in sent)
    last_202 = max((s.wall + s.latency_s for s in sent if s.status == 202), default=first)
    ids = ids_of(sent)
    counts = wait_final(db, ids, a.wait)
    last = last_applied(db, ids) or first
    return (
        f"phase A: {a.messages} messages, {a.senders} senders: "
        f"accepted {len(ids) / max(last_202 - first, 1e-9):.1f}/s, "
        f"applied {counts['applied'] / max(last - first, 1e-9):.1f}/s (target >= 500/s), "
        f"not applied {a.messages - counts['applied']}, {trouble(db, sent, ids)}; "
        f"sender CPU {cpu / max(last_202 - first, 1e-9):.2f} cores of {os.cpu_count()}"
    )


def phase_b(base: str, db: psycopg.Connection, secret: str, vs: list[str], a: argparse.Namespace) -> str:
    n = int(a.rate * a.rate_seconds)
    sent, lag = send_all(base, secret, deliveries(vs, n), a.rate_threads, rate=a.rate)
    ids = ids_of(sent)
    counts = wait_final(db, ids, a.wait)
    ms = accept_to_applied_ms(db, ids)
    http = [s.latency_s * 1000 for s in sent]
    return (
        f"phase B: {a.rate:g} msg/s offered for {a.rate_seconds:g} s: {counts['applied']} of {n} applied; "
        f"accept->applied p50 {pct(ms, 50):.1f} ms, p95 {pct(ms, 95):.1f}, p99 {pct(ms, 99):.1f} "
        f"(target < 250), max {max(ms, default=0):.1f}; HTTP p50 {pct(http, 50):.1f} ms, "
        f"p99 {pct(http, 99):.1f}; {trouble(db, sent, ids)}, "
        f"max send lag {lag * 1000:.1f} ms"
    )


def wait_ready(
    hub: subprocess.Popen[bytes], base: str, timeout_s: float = 60, path: str = "/health/ready"
) -> None:
    """Wait until GET `path` answers 200 (a FastAPI app without a health check: `/docs`)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if hub.poll() is not None:
            raise SystemExit(f"{hub.args[:4]} exited with {hub.returncode} before it was ready")
        try:
            if httpx.get(f"{base}{path}", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"the hub was not ready within {timeout_s:.0f} s")


def stop_hub(hub: subprocess.Popen[bytes]) -> None:
    if hub.poll() is None:
        hub.send_signal(signal.SIGTERM)
        try:
            hub.wait(timeout=60)
        except subprocess.TimeoutExpired:
            print("  ! the hub did not stop within 60 s; killing it", flush=True)
            os.killpg(hub.pid, signal.SIGKILL)
            hub.wait()


def cleanup(what: str, resource: subprocess.Popen[bytes] | tuple[str, ...] | str) -> None:
    """Stop the hub, delete the vhost or drop the database; a failure is reported, not raised."""
    try:
        if isinstance(resource, subprocess.Popen):
            stop_hub(resource)
        elif isinstance(resource, tuple):
            rabbitmqctl(*resource)
        else:
            admin_sql(resource)
    except Exception as exc:
        print(f"  ! could not {what}: {exc!r}", flush=True)


def report(lines: list[str], log_path: Path, started: float, title: str = "ingest benchmark") -> None:
    """The summary block, and the warnings and errors the hub logged (it logs at WARNING)."""
    log_text = log_path.read_text(errors="replace") if log_path.exists() else ""
    words = ("ERROR", "CRITICAL", "Traceback", "WARNING", "Exception")
    problems = [line for line in log_text.splitlines() if any(w in line for w in words)]
    print(f"\n== psop-hub {title} ==", *lines, sep="\n")
    print(f"hub log: {len(problems)} warning/error lines; took {time.monotonic() - started:.0f} s")
    for line in problems[:20] if lines else log_text.splitlines()[-15:]:  # on a failure: the log's tail
        print(f"  {line}")


def database_and_vhost(undo: ExitStack, name: str) -> None:
    """A database and a vhost named `name`, each registered for removal as soon as it exists."""
    admin_sql(f'CREATE DATABASE "{name}"')
    undo.callback(cleanup, f"drop database {name}", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    rabbitmqctl("add_vhost", name)
    undo.callback(cleanup, f"delete vhost {name}", ("delete_vhost", name))
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")


def provision(
    undo: ExitStack, name: str, lines: list[str], started: float, title: str = "ingest benchmark"
) -> Path:
    """A temp directory, a database and a vhost named `name`, each registered for removal as soon
    as it exists (removals run in reverse order, also on Ctrl-C), and the report (`lines` and the
    hub log's warnings) printed at the end under `title`; returns the directory."""
    tmp = Path(undo.enter_context(tempfile.TemporaryDirectory(prefix="psop_bench_")))
    undo.callback(report, lines, tmp / "hub.log", started, title)
    database_and_vhost(undo, name)
    return tmp


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(
    undo: ExitStack, what: str, argv: list[str], env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    """Start a process in its own session (a Ctrl-C reaches only the bench), its output to `log`,
    registered to be stopped (SIGTERM, then SIGKILL after 60 s) when `undo` closes."""
    with log.open("ab") as out:
        process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=out, start_new_session=True)
    undo.callback(cleanup, f"stop {what}", process)
    return process


def hub_env(name: str, port: int, tmp: Path, **extra: str) -> dict[str, str]:
    """The settings of a `hub run` on database and vhost `name`, its data in `tmp`, and `extra`
    (laid over the bench's own environment, whose other `HUB_*` variables pass through)."""
    return {
        "HUB_DATABASE_URL": PG_ADMIN.replace("/postgres", f"/{name}"),
        "HUB_AMQP_URL": f"{AMQP}/{name}",
        "HUB_HTTP_HOST": "127.0.0.1",
        "HUB_HTTP_PORT": str(port),
        "HUB_DATA_DIR": str(tmp / "data"),
        "HUB_LOG_LEVEL": "WARNING",
        **extra,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--senders", type=int, default=8, help="phase A concurrent senders")
    parser.add_argument("--messages", type=int, default=5000, help="phase A messages")
    parser.add_argument("--rate", type=float, default=100, help="phase B offered msg/s")
    parser.add_argument("--rate-seconds", type=float, default=20, help="phase B duration")
    parser.add_argument("--rate-threads", type=int, default=16, help="phase B sender threads")
    parser.add_argument("--vouchers", type=int, default=200, help="vouchers the deliveries spread over")
    parser.add_argument("--wait", type=float, default=300, help="max seconds to wait for final statuses")
    a = parser.parse_args()

    name = f"psop_bench_{uuid.uuid4().hex[:10]}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    db_url = PG_ADMIN.replace("/postgres", f"/{name}")
    started = time.monotonic()
    lines: list[str] = []
    with ExitStack() as undo:
        tmp = provision(undo, name, lines, started)
        ours = hub_env(name, port, tmp)
        passed = {k: v for k, v in os.environ.items() if k.startswith("HUB_") and k not in ours}
        env = {**os.environ, **ours}
        print(f"bench {name}: hub on port {port}, extra settings {passed or 'none'}", flush=True)
        hub = spawn(undo, "the hub", [*HUB, "run"], env, tmp / "hub.log")
        wait_ready(hub, base)
        system = add_client(env, "bench-system", "system", "--organiser", ORGANISER)
        provider = add_client(env, "bench-provider", "provider", "--provider", PROVIDER)
        with psycopg.connect(db_url, autocommit=True) as db:
            print(f"setup: granting and assigning {a.vouchers} vouchers", flush=True)
            vouchers = setup(base, db, system, a.vouchers, a.wait)
            print(f"phase A: {a.messages} deliveries from {a.senders} senders", flush=True)
            lines.append(phase_a(base, db, provider, vouchers, a))
            print(f"phase B: {a.rate:g} msg/s for {a.rate_seconds:g} s", flush=True)
            lines.append(phase_b(base, db, provider, vouchers, a))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("interrupted; what the bench created has been removed")
