"""Admin benchmark: bulk replay of 10,000 failed messages, and the admin search at 1,000,000 stored.

Run from the repository root (it prints figures and asserts nothing):

    .venv/bin/python bench/replay.py [--failed 10000] [--stored 1000000] [--repeat 20]

It creates its own database and vhost `psop_bench_<random>`, starts `hub run` on a free port with
them (HUB_MAX_RETRIES=4 with a short backoff, so that a delivery whose voucher is missing fails
within a few seconds, while a transient error, a deadlock or a lock wait under load, is still
retried),
registers a provider, a system and an admin client, and then measures:

* replay: `--failed` deliveries are sent through REST against vouchers not granted yet, and all
  fail; the vouchers are granted and assigned; a dry run counts the failed set and its plan is
  confirmed through `POST /api/v1/admin/replay`. messages/s = replayed / (confirmation .. the
  last `applied` journey step); the job's own time (all requeued and published) is printed too.
  Target: the 10,000 applied in under 30 s.
* search: `--stored` more messages are generated in SQL (INSERT ... SELECT generate_series:
  a year of mixed types, senders and statuses, a voucher number per 20 messages), the table is
  vacuumed and analysed, and a set of typical admin searches (each filter, `q` on each key, a
  deep page; with the counts per status, as the admin page asks) is sent `--repeat` times each
  through `GET /api/v1/admin/messages`. Target: p95 < 200 ms.

Everything it creates (the hub process, the database, the vhost, the data dir) is removed at
the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ingest import (  # noqa: E402
    AMQP,
    HUB,
    PG_ADMIN,
    admin_sql,
    cleanup,
    ids_of,
    pct,
    rabbitmqctl,
    send_all,
    wait_final,
    wait_ready,
)

from tests.messages import ORGANISER, PROVIDER, assigned, delivery, granted, uid  # noqa: E402

# A delivery whose voucher is missing fails within a few seconds; a transient error is still retried.
FAIL_FAST = {"HUB_MAX_RETRIES": "4", "HUB_MIN_BACKOFF_MS": "200", "HUB_MAX_BACKOFF_MS": "1000"}

GENERATE = """
INSERT INTO messages (hub_id, sender, message_id, type, sent_at, correlation_id, payload, payload_sha256,
                      organiser, provider, reference, channel, status, errors, attempts, received_at,
                      updated_at)
SELECT gen_random_uuid(),
       (ARRAY['gen-county-a', 'gen-county-b', 'gen-provider-a', 'gen-provider-b'])[1 + i %% 4],
       'gen-' || i,
       (ARRAY['delivery.reported', 'delivery.reported', 'delivery.reported', 'voucher.granted',
              'voucher.assigned', 'delivery.corrected', 'order.placed', 'payment.confirmed'])[1 + i %% 8],
       t.at,
       CASE WHEN i %% 10 = 0 THEN 'gen-corr-' || i END,
       jsonb_build_object('event_id', 'gen-ev-' || i, 'voucher_number', 'GV-' || (i %% 50000),
                          'provider', '1572860-0', 'quantity', '1.00', 'unit', 'hour'),
       md5(i::text) || md5(i::text || 'x'),
       (ARRAY['2077474-0', '0201256-6'])[1 + i %% 2],
       (ARRAY['1572860-0', '0116297-6', NULL])[1 + i %% 3],
       'GV-' || (i %% 50000),
       'rest',
       CASE WHEN i %% 100 = 0 THEN 'failed' WHEN i %% 100 = 1 THEN 'rejected'
            WHEN i %% 100 = 2 THEN 'superseded' ELSE 'applied' END,
       CASE WHEN i %% 100 IN (0, 1) THEN '[{"field": "", "message": "generated failure"}]'::jsonb
            ELSE '[]'::jsonb END,
       1, t.at, t.at
FROM generate_series(1, %(n)s) AS i,
     LATERAL (SELECT now() - make_interval(secs => (%(n)s - i) * 31536000.0 / %(n)s)) AS t(at)
"""


# The journeys of generated messages: received, validated, queued and their final status.
JOURNEYS = """
INSERT INTO journey (hub_id, step, detail, at)
SELECT m.hub_id, s.step, s.detail, m.received_at + s.n * interval '3 milliseconds'
FROM messages m,
     LATERAL (VALUES (0, 'received', 'rest from ' || m.sender), (1, 'validated', m.type),
                     (2, 'queued', 'published'), (3, m.status, '')) AS s(n, step, detail)
WHERE m.sender LIKE 'gen-%'
"""


def store_generated(db_url: str, n: int, journeys: bool = False) -> int:
    """Store `n` generated messages (GENERATE; with `journeys`, their journeys too) and vacuum and
    analyse; returns the messages stored in all."""
    with psycopg.connect(db_url, autocommit=True) as db:
        db.execute(GENERATE, {"n": n})
        if journeys:
            db.execute(JOURNEYS)
            db.execute("VACUUM ANALYZE journey")
        db.execute("VACUUM ANALYZE messages")
        total = db.execute("SELECT count(*) FROM messages").fetchone()
    return int(total[0]) if total else 0


def add_client(env: dict[str, str], name: str, *args: str) -> str:
    argv = [*HUB, "clients", "add", name, *args]
    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, check=True, timeout=60)
    return done.stdout.strip().splitlines()[-1]


def wait_status(db: psycopg.Connection, ids: list[str], status: str, timeout: float) -> float:
    """Wait until every message has `status`; the wall clock time when the last one got it."""
    deadline = time.monotonic() + timeout
    while True:
        row = db.execute(
            "SELECT count(*), extract(epoch FROM max(updated_at)) FROM messages "
            "WHERE hub_id = ANY(%s::uuid[]) AND status = %s",
            (ids, status),
        ).fetchone()
        assert row is not None
        if int(row[0]) >= len(ids):
            return float(row[1])
        if time.monotonic() > deadline:
            raise SystemExit(f"only {row[0]} of {len(ids)} messages are {status} after {timeout:.0f} s")
        time.sleep(0.2)


def replay_phase(
    base: str, db: psycopg.Connection, secrets: dict[str, str], a: argparse.Namespace
) -> tuple[str, float]:
    """The line to print and the replayed messages applied per second."""
    vouchers = [uid("bench-late") for _ in range(a.vouchers)]
    bodies = [delivery(vouchers[i % len(vouchers)], "1") for i in range(a.failed)]
    print(f"replay: sending {a.failed} deliveries whose vouchers are missing", flush=True)
    sent, _ = send_all(base, secrets["provider"], bodies, threads=8)
    ids = ids_of(sent)
    wait_status(db, ids, "failed", a.wait)
    print(f"replay: {len(ids)} failed; granting and assigning their {len(vouchers)} vouchers", flush=True)
    for build in (lambda v: granted(v, quantity="100000"), assigned):
        grants, _ = send_all(base, secrets["system"], [build(v) for v in vouchers], threads=4)
        wait_final(db, ids_of(grants), a.wait)
    admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {secrets['admin']}"}, timeout=120)
    body: dict[str, Any] = {
        "filter": {"status": "failed", "type": "delivery.reported"},
        "reason": "benchmark: the vouchers came late",
    }
    dry = admin.post("/api/v1/admin/replay", json={**body, "dry_run": True}).json()
    wall0, t0 = time.time(), time.monotonic()
    job = admin.post(
        "/api/v1/admin/replay", json={"plan_id": dry["plan_id"], "reason": body["reason"]}
    ).json()
    while job["status"] != "done":
        time.sleep(0.2)
        job = admin.get(f"/api/v1/admin/replay/{job['job_id']}").json()
    job_s = time.monotonic() - t0
    last = wait_status(db, ids, "applied", a.wait)
    took = last - wall0
    twice = db.execute(
        "SELECT count(*) FROM (SELECT hub_id FROM journey WHERE hub_id = ANY(%s::uuid[]) "
        "AND step = 'applied' GROUP BY hub_id HAVING count(*) > 1) x",
        (ids,),
    ).fetchone()
    rate = len(ids) / max(took, 1e-9)
    return (
        f"replay: {dry['matched']} failed counted by the dry run, {job['queued']} queued by the job in "
        f"{job_s:.1f} s; all {len(ids)} applied {took:.1f} s after the confirmation: "
        f"{rate:.0f} messages/s (target: under 30 s); applied twice: "
        f"{twice[0] if twice else '?'}"
    ), rate


SEARCHES: list[dict[str, Any]] = [
    {},
    {"status": "failed"},
    {"status": "failed", "type": "delivery.reported"},
    {"status": "rejected", "organiser": "0201256-6"},
    {"type": "voucher.granted"},
    {"sender": "gen-county-a"},
    {"organiser": ORGANISER},
    {"provider": PROVIDER},
    {"q": "GV-12345"},
    {"q": "gen-ev-777777"},
    {"q": "gen-654321"},
    {"q": "gen-corr-500000"},
    {"since": "7d"},
    {"status": "failed", "since": "30d"},
    {"status": "failed", "offset": 2000},
]


def search_phase(
    base: str, db_url: str, secrets: dict[str, str], a: argparse.Namespace
) -> tuple[str, list[float]]:
    """The lines to print and the time of every search in ms."""
    print(f"search: generating {a.stored} messages in SQL", flush=True)
    started = time.monotonic()
    total = store_generated(db_url, a.stored)
    print(f"search: {total} messages stored ({time.monotonic() - started:.0f} s)", flush=True)
    admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {secrets['admin']}"}, timeout=60)
    now = time.time()
    timings: dict[int, list[float]] = {i: [] for i in range(len(SEARCHES))}
    totals: dict[int, int] = {}
    for _ in range(a.repeat):
        for i, params in enumerate(SEARCHES):
            query = dict(params)
            if "since" in query:
                days = int(query["since"].rstrip("d"))
                query["since"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - days * 86400))
            t = time.perf_counter()
            answer = admin.get("/api/v1/admin/messages", params=query)
            timings[i].append((time.perf_counter() - t) * 1000)
            if answer.status_code != 200:
                raise SystemExit(f"search {query} answered {answer.status_code}: {answer.text[:300]}")
            totals[i] = int(answer.json()["total"])
    every = [ms for values in timings.values() for ms in values]
    worst = max(timings, key=lambda i: pct(timings[i], 95))
    lines = [
        f"search at {total} messages, {len(every)} requests with counts per status: "
        f"p50 {pct(every, 50):.1f} ms, p95 {pct(every, 95):.1f} ms (target < 200), max {max(every):.1f} ms; "
        f"slowest: {SEARCHES[worst]} p95 {pct(timings[worst], 95):.1f} ms"
    ]
    for i, params in enumerate(SEARCHES):
        lines.append(
            f"  {params!s:<48} total {totals[i]:>8}  p50 {pct(timings[i], 50):6.1f} ms  "
            f"p95 {pct(timings[i], 95):6.1f} ms"
        )
    return "\n".join(lines), every


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--failed", type=int, default=10_000, help="failed messages to bulk replay (0: skip)")
    parser.add_argument(
        "--stored", type=int, default=1_000_000, help="messages stored for the search (0: skip)"
    )
    parser.add_argument("--repeat", type=int, default=20, help="times each search is sent")
    parser.add_argument("--vouchers", type=int, default=200, help="vouchers the failed deliveries are for")
    parser.add_argument("--wait", type=float, default=600, help="max seconds to wait for a state")
    a = parser.parse_args()
    # A SIGTERM (or a SIGINT to a background job, which ignores SIGINT) cleans up like Ctrl-C.
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    name = f"psop_bench_{uuid.uuid4().hex[:10]}"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    base = f"http://127.0.0.1:{port}"
    db_url = PG_ADMIN.replace("/postgres", f"/{name}")
    started = time.monotonic()
    lines: list[str] = []
    with ExitStack() as undo:
        tmp = Path(undo.enter_context(tempfile.TemporaryDirectory(prefix="psop_bench_")))
        undo.callback(lambda: print("\n== psop-hub admin benchmark ==", *lines, sep="\n"))
        admin_sql(f'CREATE DATABASE "{name}"')
        undo.callback(cleanup, f"drop database {name}", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        rabbitmqctl("add_vhost", name)
        undo.callback(cleanup, f"delete vhost {name}", ("delete_vhost", name))
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        ours = {
            "HUB_DATABASE_URL": db_url,
            "HUB_AMQP_URL": f"{AMQP}/{name}",
            "HUB_HTTP_HOST": "127.0.0.1",
            "HUB_HTTP_PORT": str(port),
            "HUB_DATA_DIR": str(tmp / "data"),
            "HUB_LOG_LEVEL": "WARNING",
            **FAIL_FAST,
        }
        env = {**os.environ, **ours}
        print(f"bench {name}: hub on port {port}", flush=True)
        with (tmp / "hub.log").open("wb") as log:
            hub = subprocess.Popen(
                [*HUB, "run"], env=env, cwd=ROOT, stdout=log, stderr=log, start_new_session=True
            )
        undo.callback(cleanup, "stop the hub", hub)
        wait_ready(hub, base)
        secrets = {
            "provider": add_client(env, "bench-provider", "--role", "provider", "--provider", PROVIDER),
            "system": add_client(env, "bench-system", "--role", "system", "--organiser", ORGANISER),
            "admin": add_client(env, "bench-admin", "--role", "admin"),
        }
        if a.failed:
            with psycopg.connect(db_url, autocommit=True) as db:
                lines.append(replay_phase(base, db, secrets, a)[0])
        if a.stored:
            lines.append(search_phase(base, db_url, secrets, a)[0])
        lines.append(f"took {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("interrupted; what the bench created has been removed")
