"""The file drop's data directory runs out of space while four senders keep dropping CSV files.

The data directory is a small tmpfs of its own; in the middle of the load a filler takes every
free byte, for a few seconds, then is removed. While it is full the senders' uploads fail (they
remove the partial upload and try again, as an SFTP client does) and the adapter cannot write
receipts or results: it says so in its log, naming the file and the reason, and leaves the file
claimed. Once there is room again it carries on by itself: every file dropped gets exactly one
receipt and one result, is archived once, none is refused or left half-done, and every record is
applied exactly once (read from the state)."""

from __future__ import annotations

import errno
import itertools
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.e2e.conftest import Hub, ready_vouchers
from tests.e2e.test_filedrop_faults import adapter, deliveries_csv, put
from tests.faults.conftest import each_applied_once, wait_ready

DISK = "12m"
SENDERS = 4
ROWS = 150  # per file
FULL_S = 5.0
PAUSE_S = 1.0  # between one sender's files: the senders go on through the full disk


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of DISK bytes mounted for this test alone."""
    mount = tmp_path / "data"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK},mode=0755", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs for the disk-full test (it needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of the disk (in ever smaller writes, down to one byte); returns the filler."""
    filler = disk / ".filler"
    handle = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        size = 1 << 20
        while size:
            try:
                os.write(handle, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                size //= 2
    finally:
        os.close(handle)
    return filler


def test_disk_full_while_files_arrive(faults_hub: Hub, small_disk: Path, tmp_path: Path) -> None:
    numbers = ready_vouchers(faults_hub, 8, "DF")
    dropped: dict[str, str] = {}  # file name -> its voucher (each file's rows go to one voucher)
    refused_uploads: list[str] = []
    lock = threading.Lock()
    enough = threading.Event()

    def sender(k: int) -> None:
        for i in itertools.count():
            if enough.is_set():
                return
            name, voucher = f"toteumat-{k}-{i}.csv", numbers[(k + SENDERS * i) % len(numbers)]
            content = deliveries_csv([voucher], ROWS)
            deadline = time.monotonic() + 60
            while True:
                try:
                    put(small_disk, "provider", name, content)
                    break
                except OSError as exc:  # the upload failed half-way: remove it, try again later
                    assert exc.errno == errno.ENOSPC, exc
                    (small_disk / "inbox" / "provider" / f"{name}.part").unlink(missing_ok=True)
                    with lock:
                        refused_uploads.append(name)
                    assert time.monotonic() < deadline, "the disk never had room again"
                    time.sleep(0.3)
            with lock:
                dropped[name] = voucher
            time.sleep(PAUSE_S)

    log = tmp_path / "files.log"
    work = small_disk / "work" / "provider"
    with adapter(faults_hub, small_disk, log, HUB_FILES_BATCH="50", HUB_FILES_LEASE_S="2"):
        threads = [threading.Thread(target=sender, args=(k,), daemon=True) for k in range(SENDERS)]
        for thread in threads:
            thread.start()
        receipts = small_disk / "outbox" / "provider" / "receipts"
        deadline = time.monotonic() + 60
        # A file's result written already (more are due), and a file in the adapter's hands:
        # fill the disk now.
        while not (any(receipts.glob("*.result.json")) and work.is_dir() and any(work.iterdir())):
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.01)
        filler = fill(small_disk)
        time.sleep(FULL_S)
        filler.unlink()
        time.sleep(PAUSE_S * 2)  # files arrive on the freed disk too
        enough.set()
        for thread in threads:
            thread.join(timeout=120)
        assert not [t for t in threads if t.is_alive()]
        deadline = time.monotonic() + 180
        while len(list(receipts.glob("*.result.json"))) < len(dropped):
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
    written = log.read_text(encoding="utf-8")
    print(
        f"\n{len(dropped)} files dropped; {len(refused_uploads)} uploads refused for want of space, retried"
    )
    assert refused_uploads, "the senders never met the full disk"
    # The adapter met the full disk and said so: which file, and why.
    assert "No space left on device" in written
    failed = [line for line in written.splitlines() if "No space left on device" in line]
    assert any(f"file {name} of provider" in line for line in failed for name in dropped), failed[:5]
    assert "Traceback" not in written, written[-3000:]

    names = sorted(p.name for p in receipts.iterdir())
    assert names == sorted([f"{n}.receipt.json" for n in dropped] + [f"{n}.result.json" for n in dropped])
    accepted: dict[str, str] = {}
    voucher_of: dict[str, str] = {}
    for name, voucher in dropped.items():
        receipt = json.loads((receipts / f"{name}.receipt.json").read_text(encoding="utf-8"))
        assert (receipt["records"], receipt["accepted"], receipt["rejected"]) == (ROWS, ROWS, []), receipt
        assert "error" not in receipt
        result = json.loads((receipts / f"{name}.result.json").read_text(encoding="utf-8"))
        assert (result["records"], result["applied"], result["failed"]) == (ROWS, ROWS, 0)
        for record in receipt["messages"]:
            accepted[record["message_id"]] = record["hub_id"]
            voucher_of[record["message_id"]] = voucher
        assert written.count(f"result {name}.result.json of provider written") == 1, name
    archived = sorted(p.name for p in (small_disk / "archive" / "provider").glob("*/*"))
    assert archived == sorted(dropped)  # each once, none refused to error/, none left in work/
    assert not (small_disk / "error").exists() or not any((small_disk / "error").rglob("*.csv"))
    assert not any(work.iterdir())
    want = {n: Decimal(ROWS * list(dropped.values()).count(n)) for n in numbers}
    each_applied_once(faults_hub, "provider", accepted, voucher_of, want)
    wait_ready(faults_hub)
