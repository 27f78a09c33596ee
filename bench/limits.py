"""Raw limits of this machine, side by side in one run, on the hub's own queue type.

Run from the repository root (it prints figures and asserts nothing):

    .venv/bin/python bench/limits.py [--messages 3000] [--senders 32] [--window 256]

It creates its own vhost and database `psop_bench_<random>`, declares one durable *quorum* queue
(the hub's queue type) and measures, each on its own, with persistent 1 KiB JSON messages:

* publish, confirms one at a time: pika BlockingConnection, each publish waits for its confirm
  (p50/p95/p99: the publish-to-confirm time);
* publish, windowed: pika SelectConnection with up to `--window` confirms in flight;
* consume, manual acks: one ack per message (prefetch 200);
* consume + one PostgreSQL INSERT and COMMIT per message, then its ack;
* consume + batched commits: 100 rows per transaction (executemany), then one multiple-ack;
* pipeline, batched: the windowed publisher in a process of its own while the batched consumer
  runs, end to end (first publish .. last commit): the "raw batched" figure;
* the same pipeline with `--senders` confirms in flight, as `--senders` publishers that each wait
  for their confirm before sending again (the load the hub gets: each HTTP sender waits for its
  202): issue 14's "raw pipeline (pika publishers with confirms, a consumer committing 100 rows
  per transaction with one multiple-ack)", the figure its 0.5 target is stated against;
* a bare FastAPI endpoint (uvicorn in its own process, bench/bare_app.py) that parses and
  validates the 1 KiB voucher.granted with pydantic, driven by the shared load generator
  (bench/loadgen.py, `--senders` concurrent senders, closed loop).

Each prints msg/s and CPU ms per message per process (bench: the pika client or the load
generator; PostgreSQL: the backends of the bench's database; RabbitMQ: beam.smp; API: uvicorn).
Everything it creates is removed at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable
from contextlib import ExitStack
from multiprocessing.connection import Connection
from pathlib import Path

import pika
import psutil
import psycopg
from pika.spec import Basic

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import loadgen  # noqa: E402
from granted import kib_body  # noqa: E402
from ingest import AMQP, PG_ADMIN, database_and_vhost, free_port, pct, spawn, wait_ready  # noqa: E402
from meter import Backends, CpuMeter, Row, main_of, me, rabbitmq  # noqa: E402

QUEUE = "limits.q"
PERSISTENT = pika.BasicProperties(delivery_mode=2, content_type="application/json")
INSERT = "INSERT INTO raw_messages (body) VALUES (%s::jsonb)"
PREFETCH = 200
BATCH = 100


def declare(url: str) -> None:
    """The quorum queue, as the hub declares its own."""
    with pika.BlockingConnection(pika.URLParameters(url)) as conn:
        conn.channel().queue_declare(QUEUE, durable=True, arguments={"x-queue-type": "quorum"})


def publish_one_by_one(url: str, bodies: list[bytes]) -> list[float]:
    """Each publish waits for its confirm; returns the confirm times in seconds."""
    times = []
    with pika.BlockingConnection(pika.URLParameters(url)) as conn:
        channel = conn.channel()
        channel.confirm_delivery()
        for body in bodies:
            t = time.perf_counter()
            channel.basic_publish("", QUEUE, body, PERSISTENT, mandatory=True)
            times.append(time.perf_counter() - t)
    return times


def publish_windowed(url: str, bodies: list[bytes], window: int) -> None:
    """Publish with up to `window` unconfirmed messages in flight (an asynchronous pika connection)."""
    pending: deque[int] = deque()  # delivery tags not confirmed yet, in order
    sent = [0]
    failed: list[str] = []

    def pump(channel: pika.channel.Channel) -> None:
        while sent[0] < len(bodies) and len(pending) < window:
            channel.basic_publish("", QUEUE, bodies[sent[0]], PERSISTENT)
            sent[0] += 1
            pending.append(sent[0])  # delivery tags count from 1 on a fresh channel

    def on_confirm(channel: pika.channel.Channel, frame: pika.frame.Method) -> None:
        method = frame.method
        if isinstance(method, Basic.Nack):
            failed.append(f"nack {method.delivery_tag}")
        if method.multiple:
            while pending and pending[0] <= method.delivery_tag:
                pending.popleft()
        else:
            pending.remove(method.delivery_tag)
        if sent[0] >= len(bodies) and not pending:
            channel.connection.close()
        else:
            pump(channel)

    def on_channel(channel: pika.channel.Channel) -> None:
        channel.confirm_delivery(lambda frame: on_confirm(channel, frame))
        pump(channel)

    def on_open_error(conn: pika.SelectConnection, error: BaseException) -> None:
        failed.append(repr(error))
        conn.ioloop.stop()

    conn = pika.SelectConnection(
        pika.URLParameters(url),
        on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
        on_open_error_callback=on_open_error,
        on_close_callback=lambda c, _reason: c.ioloop.stop(),
    )
    conn.ioloop.start()
    if failed or pending or sent[0] < len(bodies):
        raise RuntimeError(f"windowed publish: {sent[0]} sent, {len(pending)} unconfirmed, {failed[:3]}")


def _publisher(url: str, bodies: list[bytes], window: int, out: Connection) -> None:
    """The pipeline's publisher, in a forked process of its own: sends back its CPU seconds."""
    publish_windowed(url, bodies, window)
    out.send(time.process_time())


def consume(url: str, n: int, mode: str, pg: psycopg.Connection) -> tuple[float, float]:
    """Consume `n` messages: `ack` (one ack each), `commit` (one INSERT and COMMIT each, then the
    ack) or `batch` (100 rows per transaction, then one multiple-ack); returns the wall clock
    times of the first delivery and of the last commit (or ack)."""
    seen = [0]
    rows: list[tuple[str]] = []
    first, last = [0.0], [0.0]
    with pika.BlockingConnection(pika.URLParameters(url)) as conn:
        channel = conn.channel()
        channel.basic_qos(prefetch_count=PREFETCH)

        def on_message(
            ch: pika.adapters.blocking_connection.BlockingChannel,
            method: Basic.Deliver,
            _props: pika.BasicProperties,
            body: bytes,
        ) -> None:
            seen[0] += 1
            if seen[0] == 1:
                first[0] = time.time()
            if mode == "ack":
                ch.basic_ack(method.delivery_tag)
            elif mode == "commit":
                pg.execute(INSERT, (body.decode(),))
                pg.commit()
                ch.basic_ack(method.delivery_tag)
            else:
                rows.append((body.decode(),))
                if len(rows) >= BATCH or seen[0] >= n:
                    with pg.cursor() as cur:
                        cur.executemany(INSERT, rows)
                    pg.commit()
                    rows.clear()
                    ch.basic_ack(method.delivery_tag, multiple=True)
            if seen[0] >= n:
                last[0] = time.time()
                ch.stop_consuming()

        channel.basic_consume(QUEUE, on_message)
        channel.start_consuming()
    return first[0], last[0]


def measured(
    name: str,
    n: int,
    groups: Callable[[], dict[str, list[psutil.Process]]],
    run: Callable[[], tuple[float, float] | None],
) -> Row:
    """Run `run` under a CPU meter; it returns the wall clock times its messages took from and to,
    or None (the whole call)."""
    print(f"limits: {name} ({n} messages)", flush=True)
    with CpuMeter(groups) as meter:
        span = run()
    took = span[1] - span[0] if span else meter.seconds
    return Row(name, n, n / max(took, 1e-9), cpu_ms=meter.ms_per(n))


def measure(a: argparse.Namespace) -> list[Row]:
    """Every raw limit, on a vhost and database of its own (removed at the end)."""
    name = f"psop_bench_{uuid.uuid4().hex[:10]}"
    url = f"{AMQP}/{name}"
    db_url = PG_ADMIN.replace("/postgres", f"/{name}")
    n = a.messages
    rows: list[Row] = []
    with ExitStack() as undo:
        tmp = Path(undo.enter_context(tempfile.TemporaryDirectory(prefix="psop_bench_")))
        database_and_vhost(undo, name)
        with psycopg.connect(db_url, autocommit=True) as db:
            db.execute("CREATE TABLE raw_messages (id bigserial PRIMARY KEY, body jsonb NOT NULL)")
        declare(url)
        # One connection for every consumer, open before the meters start: a backend that comes
        # and goes between two samples would not be counted.
        pg = undo.enter_context(psycopg.connect(db_url))
        backends = Backends(PG_ADMIN, name)
        undo.callback(backends.close)

        def groups() -> dict[str, list[psutil.Process]]:
            return {"bench": [me()], "PostgreSQL": backends(), "RabbitMQ": rabbitmq()}

        bodies = [kib_body() for _ in range(n)]
        confirms: list[float] = []
        row = measured(
            "raw: publish, confirm each", n, groups, lambda: confirms.extend(publish_one_by_one(url, bodies))
        )
        ms = [t * 1000 for t in confirms]
        row.p50, row.p95, row.p99 = pct(ms, 50), pct(ms, 95), pct(ms, 99)
        row.note = "latency: publish to confirm"
        rows.append(row)
        bodies = [kib_body() for _ in range(n)]
        rows.append(
            measured(
                f"raw: publish, {a.window} in flight",
                n,
                groups,
                lambda: publish_windowed(url, bodies, a.window),
            )
        )
        rows.append(measured("raw: consume, ack each", n, groups, lambda: consume(url, n, "ack", pg)))
        rows.append(measured("raw: consume, commit each", n, groups, lambda: consume(url, n, "commit", pg)))
        publish_windowed(url, [kib_body() for _ in range(n)], a.window)
        rows.append(
            measured(
                f"raw: consume, {BATCH}/commit+multi-ack", n, groups, lambda: consume(url, n, "batch", pg)
            )
        )
        # Forked: the child starts at once with the bodies in hand (a spawned one imports this
        # module and everything it imports first); it reports its own CPU time at the end.
        fork = multiprocessing.get_context("fork")
        child_cpu: list[float] = []
        piped = [kib_body() for _ in range(n)]

        def pipeline(window: int) -> tuple[float, float]:
            receive, send = fork.Pipe(duplex=False)
            publisher = fork.Process(target=_publisher, args=(url, piped, window, send), daemon=True)
            started = time.time()
            publisher.start()
            try:
                _, last = consume(url, n, "batch", pg)
                if receive.poll(60):
                    child_cpu.append(receive.recv())
                return started, last
            finally:
                publisher.join(60)

        # Twice: with the windowed publisher's `--window` confirms in flight, and with as many as
        # the load generator has senders, each waiting for its own confirm before it sends again
        # (a closed loop, as the HTTP senders wait for their 202): issue 14's "raw pipeline".
        for name, window in (
            ("raw batched pipeline (pub+consume)", a.window),
            (f"raw pipeline, {a.senders} senders", a.senders),
        ):
            child_cpu.clear()
            row = measured(name, n, groups, functools.partial(pipeline, window))
            row.cpu_ms["bench"] = row.cpu_ms.get("bench", 0.0) + sum(child_cpu) * 1000 / n
            row.note = (
                f"end to end (first publish .. last commit): {window} confirms in flight, batched consumer"
            )
            rows.append(row)
        rows.append(bare_api(undo, tmp, n, a.senders))
    return rows


def bare_api(undo: ExitStack, tmp: Path, n: int, senders: int) -> Row:
    """The bare FastAPI endpoint under the load generator."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "bare_app:app", "--app-dir", str(ROOT / "bench")]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]
    api = spawn(undo, "the bare endpoint", argv, dict(os.environ), tmp / "bare.log")
    base = f"http://127.0.0.1:{port}"
    wait_ready(api, base, path="/docs")
    bodies = [kib_body() for _ in range(n)]
    print(f"limits: bare FastAPI endpoint ({n} requests, {senders} senders)", flush=True)

    def groups() -> dict[str, list[psutil.Process]]:
        return {"API": [psutil.Process(api.pid)], "bench": [me()]}

    with CpuMeter(groups) as meter:
        load = loadgen.send(f"{base}/messages", bodies, {"Content-Type": "application/json"}, senders)
    return Row(
        "bare FastAPI: parse+validate 1 KiB",
        load.good,
        load.per_s,
        load.latency_ms(50),
        load.latency_ms(95),
        load.latency_ms(99),
        load.cpu_ms(meter),
        f"HTTP latency, {senders} senders{'' if load.good == n else f'; answers {dict(load.statuses)}'}",
    )


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--messages", type=int, default=3000, help="messages per measurement")
    parser.add_argument("--senders", type=int, default=32, help="concurrent senders of the load generator")
    parser.add_argument(
        "--window", type=int, default=256, help="confirms in flight of the windowed publisher"
    )


if __name__ == "__main__":
    main_of(__doc__, arguments, measure, "raw limits")
