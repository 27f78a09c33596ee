"""The file adapter under faults: SIGKILLed half-way through a file and restarted, and two
adapters on one inbox. Standalone `hub files` processes with a data directory of their own; the
session hub's workers apply what they store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, func, select

from psop_hub.hub.tables import messages
from tests.e2e.conftest import ROOT, Hub, ready_vouchers
from tests.e2e.test_filedrop import receipt_of
from tests.messages import ORGANISER, uid

HEADER = "event_id;organiser;voucher_number;order_number;service_date;quantity;unit;price"


@contextmanager
def adapter(hub: Hub, data: Path, log: Path, **extra: str) -> Iterator[subprocess.Popen[bytes]]:
    """A `hub files` process on `data`, stopped (if still alive) afterwards."""
    env = {**hub.env, "HUB_DATA_DIR": str(data), "HUB_FILES_POLL_S": "0.3", **extra}
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "psop_hub.cli", "files"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def deliveries_csv(numbers: list[str], count: int) -> bytes:
    """A provider CSV of one-hour deliveries spread over the vouchers."""
    rows = [HEADER] + [
        f"{uid('ev')};{ORGANISER};{numbers[i % len(numbers)]};;15.11.2026;1;hour;" for i in range(count)
    ]
    return ("\r\n".join(rows) + "\r\n").encode()


def put(data: Path, client: str, name: str, content: bytes) -> Path:
    """Drop a file (NAME.part, then renamed); returns its receipt path."""
    inbox = data / "inbox" / client
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / f"{name}.part").write_bytes(content)
    (inbox / f"{name}.part").rename(inbox / name)
    return data / "outbox" / client / "receipts" / f"{name}.receipt.json"


def stored_from(engine: object, prefix: str) -> int:
    """How many messages of a file are in the store."""
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return int(
            conn.execute(select(func.count()).where(messages.c.message_id.like(f"{prefix}%"))).scalar()
        )


def test_sigkill_half_way_through_a_file_then_restart(hub: Hub, tmp_path: Path) -> None:
    import hashlib

    numbers = ready_vouchers(hub, 5, "FK")
    content = deliveries_csv(numbers, 5000)
    prefix = f"file-{hashlib.sha256(content).hexdigest()[:32]}-"
    engine = create_engine(hub.env["HUB_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://"))
    log = tmp_path / "files.log"
    with adapter(hub, tmp_path, log, HUB_FILES_BATCH="50", HUB_FILES_LEASE_S="2") as first:
        receipt = put(tmp_path, "provider", "toteumat.csv", content)
        deadline = time.monotonic() + 60
        while stored_from(engine, prefix) < 300:
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    killed_at = stored_from(engine, prefix)
    assert 0 < killed_at < 5000, "the kill came too late to be half-way"
    assert not receipt.exists()
    assert list((tmp_path / "work" / "provider").iterdir())  # still claimed, nobody at work on it

    with adapter(hub, tmp_path, log, HUB_FILES_BATCH="500", HUB_FILES_LEASE_S="2"):
        done = receipt_of(receipt, timeout=120)
    assert (done["records"], done["accepted"], done["rejected"]) == (5000, 5000, [])
    assert done["duplicates"] >= killed_at  # what the first adapter stored is not stored again
    assert stored_from(engine, prefix) == 5000
    assert not list((tmp_path / "work" / "provider").iterdir())
    with hub.client("county") as county:
        deadline = time.monotonic() + 120
        while True:
            used = sum(
                float(county.get(f"/api/v1/vouchers/{ORGANISER}/{n}").json()["quantity_used"])
                for n in numbers
            )
            if used == 5000 or time.monotonic() > deadline:
                break
            time.sleep(1)
    assert used == 5000  # every record applied exactly once
    engine.dispose()


def test_two_adapters_on_one_inbox_process_each_file_once(hub: Hub, tmp_path: Path) -> None:
    numbers = ready_vouchers(hub, 2, "FK")
    files = {f"erä-{i:02d}.csv": deliveries_csv(numbers, 40) for i in range(12)}
    log = tmp_path / "files.log"
    with adapter(hub, tmp_path, log), adapter(hub, tmp_path, log):
        receipts = [put(tmp_path, "provider", name, content) for name, content in files.items()]
        results = [receipt_of(r) for r in receipts]
    assert all((r["accepted"], r["duplicates"], r["rejected"]) == (40, 0, []) for r in results)
    archived = sorted(p.name for p in (tmp_path / "archive" / "provider").glob("*/*"))
    assert archived == sorted(files)  # each once: no ".1" copies
    assert not list((tmp_path / "error").glob("**/*.csv"))


def test_two_adapters_write_each_result_once(hub: Hub, tmp_path: Path) -> None:
    numbers = ready_vouchers(hub, 2, "FK")
    files = {f"tulos-{i:02d}.csv": deliveries_csv(numbers, 30) for i in range(8)}
    log = tmp_path / "files.log"
    with adapter(hub, tmp_path, log), adapter(hub, tmp_path, log):
        receipts = [put(tmp_path, "provider", name, content) for name, content in files.items()]
        results = [
            receipt_of(r.with_name(r.name.replace(".receipt.json", ".result.json")), timeout=120)
            for r in receipts
        ]
        time.sleep(2)  # more rounds of both adapters: nothing is written again
    assert all((r["records"], r["applied"], r["rejected"], r["failed"]) == (30, 30, 0, 0) for r in results)
    assert {r["file"] for r in results} == set(files)
    written = log.read_text(encoding="utf-8")
    for name in files:
        assert written.count(f"result {name}.result.json of provider written") == 1, name
    leftovers = [
        p.name for p in (tmp_path / "outbox" / "provider" / "receipts").iterdir() if p.name.startswith(".")
    ]
    assert leftovers == []  # no temporary file left behind
