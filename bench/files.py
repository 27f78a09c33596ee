"""File-drop benchmark: a real `hub run`, real PostgreSQL and RabbitMQ, files dropped into its inbox.

Run from the repository root (it prints figures and asserts nothing):

    .venv/bin/python bench/files.py [--records 100000] [--vouchers 200] [--big-mb 0] [--xml-form soap]

It creates its own database and vhost, starts `hub run` with a data directory of its own, then:
* a provider CSV of `--records` delivery reports (Finnish format, Latin-9, CRLF), and
* an XML batch of `--records` voucher decisions (GRANTED), its records in the SOAP namespace or,
  with `--xml-form default`, in the file's default namespace,
each dropped as NAME.part and renamed; for each it prints records/s to the receipt (intake) and
records/s to the last record applied (end to end, from the database), and the file adapter's
peak resident memory (VmHWM of the `hub files` process) once the file's result is written too.
`--big-mb N` also drops an XML batch of about N MB and reports the adapter's peak memory after its
intake (memory must stay flat).
Targets: >= 1000 records/s applied; < 150 MB peak for the adapter.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import psutil
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import (
    AMQP,
    HUB,
    PG_ADMIN,
    ROOT,
    add_client,
    cleanup,
    provision,
    setup,
    wait_ready,
)

from tests.messages import HETU, ORGANISER, PROVIDER

CSV_HEADER = "event_id;organiser;voucher_number;order_number;service_date;quantity;unit;price"


def write_csv(path: Path, vouchers: list[str], records: int) -> None:
    """A provider CSV of one-hour deliveries, as a Finnish spreadsheet exports it."""
    with path.open("wb") as out:
        out.write(f"{CSV_HEADER}\r\n".encode("iso-8859-15"))
        for n in range(records):
            voucher = vouchers[n % len(vouchers)]
            row = f"TOTEUMA-Ä-{n:08d};{ORGANISER};{voucher};;{n % 28 + 1}.11.2026;1;hour;32,50\r\n"
            out.write(row.encode("iso-8859-15"))


def write_xml(path: Path, records: int, tag: str, form: str = "soap") -> None:
    """A VoucherDecisionBatch of GRANTED decisions, written as a stream; `form` "soap" writes the
    records in the SOAP namespace (`v:`), "default" in the file's default namespace."""
    p = "v:" if form == "soap" else ""
    with path.open("wb") as out:
        out.write(b'<?xml version="1.0" encoding="UTF-8"?>\n')
        if form == "soap":
            out.write(b'<VoucherDecisionBatch xmlns="urn:psop-hub:file:v1" xmlns:v="urn:psop-hub:soap:v1">\n')
        else:
            out.write(b'<VoucherDecisionBatch xmlns="urn:psop-hub:file:v1">\n')
        for n in range(records):
            out.write(
                (
                    f"<{p}VoucherDecision><{p}DecisionType>GRANTED</{p}DecisionType>"
                    f"<{p}VoucherNumber>{tag}-{n:08d}</{p}VoucherNumber><{p}Organiser>{ORGANISER}</{p}Organiser>"
                    f"<{p}DecisionDate>2026-11-01</{p}DecisionDate><{p}Client><{p}Hetu>{HETU}</{p}Hetu>"
                    f"<{p}HomeMunicipality>179</{p}HomeMunicipality></{p}Client><{p}Service><{p}Code>KH01</{p}Code>"
                    f"<{p}Name>Säännöllinen kotihoito, Jyväskylä</{p}Name></{p}Service>"
                    f"<{p}Unit>hour</{p}Unit><{p}UnitValue>25.00</{p}UnitValue><{p}Quantity>40</{p}Quantity><{p}ValidFrom>2026-11-01"
                    f"</{p}ValidFrom><{p}ValidTo>2027-10-31</{p}ValidTo></{p}VoucherDecision>\n"
                ).encode()
            )
        out.write(b"</VoucherDecisionBatch>\n")


def files_process(hub: subprocess.Popen[bytes]) -> psutil.Process:
    """The `hub files` child of the hub."""
    for child in psutil.Process(hub.pid).children(recursive=True):
        if "files" in child.cmdline():
            return child
    raise RuntimeError("hub run has no files component")


def peak_mb(process: psutil.Process) -> float:
    """Peak resident memory (VmHWM) of a process, in MB."""
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def drop_and_measure(
    data: Path, client: str, source: Path, db: psycopg.Connection, wait_s: float, apply: bool
) -> tuple[str, float]:
    """Drop a file, wait for its receipt (and, with `apply`, for every record applied); the line
    to print and records/s (to the receipt, or with `apply` to the last record applied)."""
    inbox = data / "inbox" / client
    inbox.mkdir(parents=True, exist_ok=True)
    receipt = data / "outbox" / client / "receipts" / f"{source.name}.receipt.json"
    size_mb = source.stat().st_size / 1e6
    started = time.time()
    os.replace(source, inbox / f"{source.name}.part")
    os.replace(inbox / f"{source.name}.part", inbox / source.name)
    deadline = time.monotonic() + wait_s
    while not receipt.exists():
        if time.monotonic() > deadline:
            return f"{source.name}: no receipt after {wait_s:g} s", 0.0
        time.sleep(0.2)
    intake = time.time() - started
    records = int(__import__("json").loads(receipt.read_text())["accepted"])
    line = f"{source.name} ({size_mb:.0f} MB, {records} records): intake {records / intake:.0f} records/s"
    if not apply:
        return line, records / intake
    pending = -1
    while time.monotonic() < deadline:
        pending = db.execute(
            "SELECT count(*) FROM messages WHERE channel = 'file' "
            "AND status NOT IN ('applied', 'rejected', 'failed')"
        ).fetchone()[0]  # type: ignore[index]
        if pending == 0:
            break
        time.sleep(0.5)
    last = db.execute("SELECT extract(epoch FROM max(at)) FROM journey WHERE step = 'applied'").fetchone()[0]  # type: ignore[index]
    applied = db.execute(
        "SELECT count(*) FROM messages WHERE channel = 'file' AND status = 'applied'"
    ).fetchone()[0]  # type: ignore[index]
    rate = records / max(float(last) - started, 1e-9)
    # The result is written by the file adapter too (its memory counts): wait for it.
    result = receipt.with_name(receipt.name.removesuffix(".receipt.json") + ".result.json")
    while not result.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    written = f"result after {time.time() - started:.0f} s" if result.exists() else "no result"
    return (
        f"{line}, applied {rate:.0f} records/s (target >= 1000; {applied} applied in all, {pending} "
        f"pending); {written}",
        rate,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--vouchers", type=int, default=200)
    parser.add_argument(
        "--big-mb", type=int, default=0, help="also an XML batch of about this many MB (intake only)"
    )
    parser.add_argument(
        "--xml-form",
        choices=("soap", "default"),
        default="soap",
        help="records of the XML batches in the SOAP namespace (v:) or in the file's default namespace",
    )
    parser.add_argument("--wait", type=float, default=900)
    a = parser.parse_args()
    name = f"psop_bench_{uuid.uuid4().hex[:10]}"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    base = f"http://127.0.0.1:{port}"
    db_url = PG_ADMIN.replace("/postgres", f"/{name}")
    started = time.monotonic()
    lines: list[str] = []
    with ExitStack() as undo:
        tmp = provision(undo, name, lines, started)
        data = tmp / "data"
        env = {
            **os.environ,
            "HUB_DATABASE_URL": db_url,
            "HUB_AMQP_URL": f"{AMQP}/{name}",
            "HUB_HTTP_HOST": "127.0.0.1",
            "HUB_HTTP_PORT": str(port),
            "HUB_DATA_DIR": str(data),
            "HUB_LOG_LEVEL": "WARNING",
            "HUB_SCHEDULER_ENABLED": "false",
        }
        with (tmp / "hub.log").open("wb") as log:
            hub = subprocess.Popen(
                [*HUB, "run"], env=env, cwd=ROOT, stdout=log, stderr=log, start_new_session=True
            )
        undo.callback(cleanup, "stop the hub", hub)
        wait_ready(hub, base)
        system = add_client(env, "county", "system", "--organiser", ORGANISER)
        add_client(env, "provider", "provider", "--provider", PROVIDER)
        adapter = files_process(hub)
        with psycopg.connect(db_url, autocommit=True) as db:
            print(f"setup: {a.vouchers} vouchers; files of {a.records} records", flush=True)
            vouchers = setup(base, db, system, a.vouchers, a.wait)
            write_csv(tmp / "toteumat.csv", vouchers, a.records)
            write_xml(tmp / "paatokset.xml", a.records, "B", a.xml_form)
            lines.append(drop_and_measure(data, "provider", tmp / "toteumat.csv", db, a.wait, apply=True)[0])
            lines.append(
                f"file adapter peak memory (VmHWM) after the CSV and its result: {peak_mb(adapter):.0f} MB"
            )
            lines.append(drop_and_measure(data, "county", tmp / "paatokset.xml", db, a.wait, apply=True)[0])
            lines.append(
                f"file adapter peak memory (VmHWM) after both and their results: {peak_mb(adapter):.0f} MB "
                "(target < 150)"
            )
            if a.big_mb:
                # 547 bytes a record in the SOAP form, fewer in the default form
                write_xml(tmp / "iso.xml", a.big_mb * 1_000_000 // 547, "X", a.xml_form)
                lines.append(drop_and_measure(data, "county", tmp / "iso.xml", db, a.wait, apply=False)[0])
                lines.append(
                    f"file adapter peak memory after the {a.big_mb} MB file: {peak_mb(adapter):.0f} MB"
                )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("interrupted; what the bench created has been removed")
