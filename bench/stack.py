"""The ingest benchmark through the container stack's load balancer, beside `hub run`, in one run.

Run from the repository root, with Docker running and the images at hand (docker/install-docker.sh,
then `make images-offline` where no registry is reachable); it prints figures and asserts nothing:

    .venv/bin/python bench/stack.py [--messages 5000] [--senders 8] [--rate 100] [--skip-local]

1. `hub run` on this machine (its own database and vhost on the host's PostgreSQL and RabbitMQ):
   bench/ingest.py's phase A (`--messages` deliveries from `--senders` threads, as fast as they
   go): accepted/s and applied/s.
2. The stack (`docker compose up -d --build` from nothing, project psop-bench on 127.0.0.1:18100):
   the same phase A through lb; then the ratio of the two.
3. Recovery, on the stack: a paced load of `--rate` msg/s through lb (each request on its own
   connection, a 503 or a connection error retried with the same message after 0.2 s, as the
   container tests' client does) while, one after another: `docker kill` of a worker, of an api
   replica, of a file adapter, and `docker compose restart rabbitmq`. For each: the requests that
   failed for good, the 503s and connection errors retried, the time from the kill to the first
   request sent after it that was accepted, the longest gap between two accepted requests, and
   the time until every message accepted by then was applied. Killed containers are started
   again (`docker compose start`) before the next kill.

For phase A's database figures the bench publishes the stack's PostgreSQL on a free port of
127.0.0.1 with an extra compose file of its own (the normal stack publishes only lb). The stack
is removed at the end (`down -v`), also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import ingest  # noqa: E402

from tests.messages import ORGANISER, PROVIDER, delivery  # noqa: E402

PROJECT = "psop-bench"
PORT = 18100
COMPOSE = ["docker", "compose"]


@dataclass
class Stack:
    """The bench's compose project."""

    env: dict[str, str]
    db_url: str
    base: str = f"http://127.0.0.1:{PORT}"

    def compose(self, *args: str, timeout: float = 900, check: bool = True) -> str:
        done = subprocess.run(
            [*COMPOSE, *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            raise SystemExit(f"docker compose {' '.join(args)} -> {done.returncode}\n{done.stderr[-3000:]}")
        return done.stdout

    def containers(self, service: str) -> list[str]:
        return self.compose("ps", "-q", service).split()

    def add_client(self, name: str, role: str, flag: str, business_id: str) -> str:
        argv = ["exec", "-T", "api", "hub", "clients", "add", name, "--role", role, flag, business_id]
        return self.compose(*argv).strip().splitlines()[-1]


def start_stack(undo: ExitStack, tmp: Path) -> Stack:
    """The stack from nothing, with PostgreSQL also published on 127.0.0.1 for the bench."""
    pg_port = ingest.free_port()
    extra = tmp / "bench-publish-postgres.yml"
    extra.write_text(
        f'services:\n  postgres:\n    networks: [backend, edge]\n    ports: ["127.0.0.1:{pg_port}:5432"]\n',
        encoding="utf-8",
    )
    files = tmp / "files"
    files.mkdir()
    env = {
        **os.environ,
        "COMPOSE_PROJECT_NAME": PROJECT,
        "COMPOSE_FILE": f"docker-compose.yml:{extra}",
        "HUB_PORT": str(PORT),
        "HUB_FILES_DIR": str(files),
        "HUB_LOG_LEVEL": "WARNING",
    }
    stack = Stack(env=env, db_url=f"postgresql://hub:hub-local-only@127.0.0.1:{pg_port}/psop_hub")
    stack.compose("down", "-v", "--remove-orphans", check=False)
    undo.callback(lambda: stack.compose("down", "-v", "--remove-orphans", check=False))
    began = time.monotonic()
    stack.compose("up", "-d", "--build", timeout=1800)
    deadline = time.monotonic() + 600
    while True:
        try:
            if httpx.get(f"{stack.base}/health/ready", timeout=3).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("the stack was not ready within 600 s")
        time.sleep(0.5)
    print(f"stack {PROJECT} ready on {stack.base} in {time.monotonic() - began:.0f} s", flush=True)
    return stack


def phase_a(base: str, db_url: str, system: str, provider: str, a: argparse.Namespace) -> tuple[str, float]:
    """bench/ingest.py's setup and phase A against `base`; returns its line and applied/s."""
    with psycopg.connect(db_url, autocommit=True) as db:
        vouchers = ingest.setup(base, db, system, a.vouchers, a.wait)
        line = ingest.phase_a(base, db, provider, vouchers, a)
    applied = float(line.split("applied ")[1].split("/s")[0])
    return line, applied


# --- recovery under a paced load --------------------------------------------------------------


@dataclass
class Paced:
    """`rate` msg/s through lb from `threads` threads; every request on its own connection, a 503
    or a connection error retried (same message) after 0.2 s, giving up after 90 s."""

    base: str
    secret: str
    vouchers: list[str]
    rate: float
    threads: int = 16
    accepted: list[tuple[float, float, str]] = field(default_factory=list)  # (sent, answered, hub_id)
    retried: Counter[str] = field(default_factory=Counter)
    retry_times: list[tuple[float, str]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self.t0 = time.monotonic()
        for k in range(self.threads):
            thread = threading.Thread(target=self._run, args=(k,), daemon=True)
            thread.start()
            self.workers.append(thread)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.workers:
            thread.join(100)

    def _run(self, k: int) -> None:
        host, port = self.base.split("//")[1].split(":")
        headers = {"Authorization": f"Bearer {self.secret}", "Content-Type": "application/json"}
        i = k
        while not self.stop.is_set():
            delay = self.t0 + i / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            body = json.dumps(delivery(self.vouchers[i % len(self.vouchers)], "1")).encode()
            sent = time.monotonic()
            give_up = sent + 90
            while True:
                why = ""
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                try:
                    conn.request("POST", "/api/v1/messages", body=body, headers=headers)
                    answer = conn.getresponse()
                    data = answer.read()
                    if answer.status in (200, 202):
                        with self.lock:
                            self.accepted.append((sent, time.monotonic(), json.loads(data)["hub_id"]))
                        break
                    if answer.status != 503:
                        with self.lock:
                            self.failed.append(f"{answer.status} {data[:200]!r}")
                        break
                    why = "503"
                except (OSError, http.client.HTTPException) as exc:
                    why = type(exc).__name__
                finally:
                    conn.close()
                with self.lock:
                    self.retried[why] += 1
                    self.retry_times.append((time.monotonic(), why))
                if time.monotonic() > give_up:
                    with self.lock:
                        self.failed.append(f"gave up after 90 s ({why})")
                    break
                time.sleep(0.2)
            i += self.threads


def applied_count(db: psycopg.Connection, hub_ids: list[str]) -> int:
    row = db.execute(
        "SELECT count(*) FROM messages WHERE status = 'applied' AND hub_id = ANY(%s::uuid[])", (hub_ids,)
    ).fetchone()
    return int(row[0]) if row else 0


def recovery(
    stack: Stack, db_url: str, provider: str, vouchers: list[str], a: argparse.Namespace
) -> list[str]:
    """Each fault under the paced load; one line of figures per fault."""

    def kill(service: str) -> tuple[str, str]:
        victim = stack.containers(service)[0]
        subprocess.run(["docker", "kill", victim], check=True, capture_output=True)
        return victim, service

    faults: list[tuple[str, Any]] = [
        ("docker kill worker", lambda: kill("worker")),
        ("docker kill api", lambda: kill("api")),
        ("docker kill files", lambda: kill("files")),
        ("compose restart rabbitmq", lambda: (stack.compose("restart", "rabbitmq", timeout=300), None)[1]),
    ]
    lines = []
    load = Paced(stack.base, provider, vouchers, a.rate)
    load.start()
    with psycopg.connect(db_url, autocommit=True) as db:
        try:
            time.sleep(5)
            for name, fault in faults:
                began = len(load.failed)
                killed_at = time.monotonic()
                victim = fault()
                time.sleep(a.fault_seconds)
                with load.lock:
                    after = [x for x in load.accepted if x[0] >= killed_at]
                    window = sorted(x[1] for x in load.accepted if x[1] >= killed_at - 5)
                    retries = Counter(why for t, why in load.retry_times if t >= killed_at)
                    ids = [x[2] for x in load.accepted]
                first_ok = min((x[1] for x in after), default=float("nan")) - killed_at
                gap = max((b - c for c, b in itertools.pairwise(window)), default=0.0)
                deadline = time.monotonic() + 300
                while applied_count(db, ids) < len(ids) and time.monotonic() < deadline:
                    time.sleep(0.5)
                drained = time.monotonic() - killed_at
                applied = applied_count(db, ids)
                lines.append(
                    f"  {name}: first accepted request sent after it {first_ok:.2f} s after the kill; "
                    f"longest gap between accepted {gap:.2f} s; retried {dict(retries) or 'none'}; "
                    f"failed {len(load.failed) - began}; all {len(ids)} accepted so far applied "
                    f"{drained:.1f} s after the kill ({applied} applied)"
                )
                print(lines[-1], flush=True)
                if victim is not None:
                    stack.compose("start", victim[1])
                    time.sleep(a.fault_seconds)
        finally:
            load.finish()
    seconds = time.monotonic() - load.t0
    lines.insert(
        0,
        f"recovery under {a.rate:g} msg/s offered: {len(load.accepted)} accepted in {seconds:.0f} s, "
        f"failed for good {len(load.failed)}",
    )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--senders", type=int, default=8, help="phase A concurrent senders")
    parser.add_argument("--messages", type=int, default=5000, help="phase A messages")
    parser.add_argument("--vouchers", type=int, default=200, help="vouchers the deliveries spread over")
    parser.add_argument("--wait", type=float, default=300, help="max seconds to wait for final statuses")
    parser.add_argument("--rate", type=float, default=100, help="recovery: offered msg/s through lb")
    parser.add_argument("--fault-seconds", type=float, default=10, help="recovery: seconds after each fault")
    parser.add_argument("--skip-local", action="store_true", help="do not run `hub run` beside the stack")
    a = parser.parse_args()
    started = time.monotonic()
    lines: list[str] = []
    local_applied = None
    with ExitStack() as undo:
        if not a.skip_local:
            name = f"psop_bench_{uuid.uuid4().hex[:10]}"
            port = ingest.free_port()
            base = f"http://127.0.0.1:{port}"
            db_url = ingest.PG_ADMIN.replace("/postgres", f"/{name}")
            tmp = ingest.provision(undo, name, lines, started)
            env = {
                **os.environ,
                "HUB_DATABASE_URL": db_url,
                "HUB_AMQP_URL": f"{ingest.AMQP}/{name}",
                "HUB_HTTP_HOST": "127.0.0.1",
                "HUB_HTTP_PORT": str(port),
                "HUB_DATA_DIR": str(tmp / "data"),
                "HUB_LOG_LEVEL": "WARNING",
            }
            print(f"hub run on {base} ({name})", flush=True)
            with (tmp / "hub.log").open("wb") as log:
                hub = subprocess.Popen(
                    [*ingest.HUB, "run"], env=env, cwd=ROOT, stdout=log, stderr=log, start_new_session=True
                )
            undo.callback(ingest.cleanup, "stop the hub", hub)
            ingest.wait_ready(hub, base)
            system = ingest.add_client(env, "bench-system", "system", "--organiser", ORGANISER)
            provider = ingest.add_client(env, "bench-provider", "provider", "--provider", PROVIDER)
            line, local_applied = phase_a(base, db_url, system, provider, a)
            lines.append("hub run      " + line)
            print(lines[-1], flush=True)
            ingest.cleanup("stop the hub", hub)  # the stack gets the machine to itself
        tmp_stack = Path(undo.enter_context(tempfile.TemporaryDirectory(prefix="psop_bench_stack_")))
        stack = start_stack(undo, tmp_stack)
        system = stack.add_client(f"bench-system-{uuid.uuid4().hex[:6]}", "system", "--organiser", ORGANISER)
        provider = stack.add_client(
            f"bench-provider-{uuid.uuid4().hex[:6]}", "provider", "--provider", PROVIDER
        )
        line, stack_applied = phase_a(stack.base, stack.db_url, system, provider, a)
        lines.append("stack via lb " + line)
        print(lines[-1], flush=True)
        if local_applied:
            lines.append(f"ratio stack/hub run (applied/s): {stack_applied / local_applied:.2f}")
        with psycopg.connect(stack.db_url, autocommit=True) as db:
            vouchers = ingest.setup(stack.base, db, system, 20, a.wait)
        lines += recovery(stack, stack.db_url, provider, vouchers, a)
        if a.skip_local:
            print("\n== psop-hub stack benchmark ==", *lines, sep="\n")
    print(f"took {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("interrupted; what the bench created has been removed")
