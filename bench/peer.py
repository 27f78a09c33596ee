"""The naive stack (bench/peer_app.py) measured with the hub's load generator.

Run from the repository root (it prints figures and asserts nothing):

    .venv/bin/python bench/peer.py [--messages 3000] [--senders 32]

It creates its own vhost and database `psop_bench_<random>`, creates the stack's table, starts
`uvicorn peer_app:app` and `dramatiq peer_app` (their defaults: one uvicorn process, a Dramatiq
process per core with 8 threads each) and sends `--messages` voucher.granted (the hub's own test
messages) from `--senders` concurrent senders, closed loop (bench/loadgen.py). It waits until
every accepted message is in the table. accepted/s = 202s / (first send .. last answer);
stored/s = rows / (first send .. the last row's created_at). CPU ms per message per process:
uvicorn (API), the Dramatiq processes (workers), the PostgreSQL backends of its database,
beam.smp, the load generator. Everything it creates is removed at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import psutil
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import loadgen  # noqa: E402
from ingest import AMQP, PG_ADMIN, database_and_vhost, free_port, spawn, wait_ready  # noqa: E402
from meter import Backends, CpuMeter, Row, cached, main_of, me, rabbitmq  # noqa: E402

from tests.messages import granted, uid  # noqa: E402

BENCH = str(ROOT / "bench")


def tree(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    try:
        parent = psutil.Process(process.pid)
        return [parent, *parent.children(recursive=True)]
    except psutil.Error:
        return []


def wait_rows(db: psycopg.Connection, n: int, timeout_s: float) -> tuple[int, float]:
    """Wait until the table has `n` rows (or the timeout); the rows and the last one's time."""
    deadline = time.monotonic() + timeout_s
    while True:
        row = db.execute("SELECT count(*), extract(epoch FROM max(created_at)) FROM peer_vouchers").fetchone()
        count, last = (int(row[0]), float(row[1] or 0)) if row else (0, 0.0)
        if count >= n or time.monotonic() > deadline:
            return count, last
        time.sleep(0.25)


def measure(a: argparse.Namespace) -> list[Row]:
    name = f"psop_bench_{uuid.uuid4().hex[:10]}"
    db_url = PG_ADMIN.replace("/postgres", f"/{name}")
    env = {**os.environ, "PEER_AMQP_URL": f"{AMQP}/{name}", "PEER_DATABASE_URL": db_url}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with ExitStack() as undo:
        tmp = Path(undo.enter_context(tempfile.TemporaryDirectory(prefix="psop_bench_")))
        database_and_vhost(undo, name)
        subprocess.run(
            [sys.executable, "-c", "import peer_app; peer_app.Base.metadata.create_all(peer_app.engine)"],
            env=env,
            cwd=BENCH,
            check=True,
            timeout=120,
        )
        api_argv = [sys.executable, "-m", "uvicorn", "peer_app:app", "--app-dir", BENCH]
        api_argv += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]
        api = spawn(undo, "the peer's API", api_argv, env, tmp / "peer.log")
        workers = spawn(
            undo,
            "the peer's workers",
            [sys.executable, "-m", "dramatiq", "peer_app", "--path", BENCH],
            env,
            tmp / "peer.log",
        )
        wait_ready(api, base, path="/docs")
        with psycopg.connect(db_url, autocommit=True) as db:
            backends = Backends(PG_ADMIN, name, exclude=[db.info.backend_pid])
            undo.callback(backends.close)
            # Its workers are up when their connections to RabbitMQ are: warm them with one message.
            headers = {"Content-Type": "application/json"}
            warm = [json.dumps(granted(uid("peer-warm"))).encode()]
            warmed = loadgen.send(f"{base}/messages", warm, headers, 1)
            if wait_rows(db, 1, 120)[0] < 1 or workers.poll() is not None:
                raise SystemExit(f"the peer stored nothing: {warmed.summary()}; see {tmp / 'peer.log'}")
            db.execute("TRUNCATE peer_vouchers")

            processes = cached(lambda: {"API": tree(api), "workers": tree(workers)})

            def groups() -> dict[str, list[psutil.Process]]:
                return {
                    **processes(),
                    "PostgreSQL": backends(),
                    "RabbitMQ": rabbitmq(),
                    "bench": [me()],
                }

            bodies = [json.dumps(granted(uid("peer-v"))).encode() for _ in range(a.messages)]
            print(f"peer: {a.messages} voucher.granted from {a.senders} senders", flush=True)
            with CpuMeter(groups) as meter:
                load = loadgen.send(f"{base}/messages", bodies, headers, a.senders)
                stored, last = wait_rows(db, load.good, a.wait)
            first = load.first_wall
    return [
        Row(
            "peer: FastAPI+Dramatiq+SQLAlchemy",
            stored,
            stored / max(last - first, 1e-9),
            load.latency_ms(50),
            load.latency_ms(95),
            load.latency_ms(99),
            load.cpu_ms(meter),
            f"stored/s end to end; accepted {load.per_s:.0f}/s; HTTP latency; "
            f"{a.messages - stored} not stored{'' if load.good == a.messages else f'; {load.statuses}'}",
        )
    ]


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--messages", type=int, default=3000, help="voucher.granted messages to send")
    parser.add_argument("--senders", type=int, default=32, help="concurrent senders of the load generator")
    parser.add_argument("--wait", type=float, default=300, help="max seconds to wait for the rows")


if __name__ == "__main__":
    main_of(__doc__, arguments, measure, "the naive stack")
