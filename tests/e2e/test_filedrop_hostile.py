"""Hostile batch files against a real `hub files` process with small limits: the XML rules of SOAP
(no DTD, so no XXE by file or network, no billion laughs or quadratic blowup; depth, elements and
attributes per record), the limits of a file (bytes, records), and CSV oddities (NUL bytes,
invalid UTF-8, huge fields). Each file gets a receipt naming its problem, nothing of a refused
file is stored, and the adapter goes on reading the next file."""

from __future__ import annotations

import hashlib
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from tests.e2e.conftest import Hub
from tests.e2e.test_filedrop import batch, drop, granted, receipt_of
from tests.e2e.test_filedrop_faults import adapter, put, stored_from
from tests.messages import ORGANISER, uid

MAX_BYTES = 1_000_000
MAX_RECORDS = 20
MAX_NODES = 200
PAYMENTS = "settlement_id;paid_date;amount;reference"


class _Listener(http.server.BaseHTTPRequestHandler):
    """Counts every request: an external entity or DTD the parser fetched would show up here."""

    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        body = b'<!ENTITY x "fetched">'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def listener() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Listener)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def strict(hub: Hub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, object]]:
    """A `hub files` process with small limits on a data directory of its own."""
    data = tmp_path_factory.mktemp("strictdata")
    log = data.parent / "strict-files.log"
    limits = {
        "HUB_FILES_MAX_BYTES": str(MAX_BYTES),
        "HUB_FILES_MAX_RECORDS": str(MAX_RECORDS),
        "HUB_MAX_XML_NODES": str(MAX_NODES),
    }
    with adapter(hub, data, log, **limits) as process:
        yield data, process


@pytest.fixture(scope="module")
def engine(hub: Hub) -> Iterator[Engine]:
    made = create_engine(hub.env["HUB_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://"))
    yield made
    made.dispose()


def appears(path: Path, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def with_doctype(doctype: str, record: str) -> bytes:
    """A batch file whose prolog declares `doctype`."""
    body = batch(record).split(b"\n", 1)[1]
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + doctype.encode() + b"\n" + body


def laughs() -> str:
    entities = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{n} "{("&lol" + (str(n - 1) if n > 1 else "") + ";") * 10}">' for n in range(1, 10)
    ]
    return f"<!DOCTYPE VoucherDecisionBatch [{''.join(entities)}]>"


def nested(depth: int) -> str:
    return "<v:Extra>" * depth + "x" + "</v:Extra>" * depth


def xml_cases(listener: str) -> dict[str, tuple[bytes, str]]:
    """name: (content, a word the receipt's error must contain)."""
    number = uid("HOSTILE")
    reference = granted(number).replace(number, "&xxe;")
    return {
        "xxe-file": (
            with_doctype('<!DOCTYPE b [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>', reference),
            "DTD",
        ),
        "xxe-network": (
            with_doctype(f'<!DOCTYPE b [<!ENTITY xxe SYSTEM "{listener}/xxe">]>', reference),
            "DTD",
        ),
        "xxe-parameter": (
            with_doctype(f'<!DOCTYPE b [<!ENTITY % p SYSTEM "{listener}/param"> %p;]>', reference),
            "DTD",
        ),
        "external-dtd": (
            with_doctype(f'<!DOCTYPE VoucherDecisionBatch SYSTEM "{listener}/batch.dtd">', granted(number)),
            "DTD",
        ),
        "billion-laughs": (with_doctype(laughs(), granted(number).replace(number, "&lol9;")), "DTD"),
        "quadratic-blowup": (
            with_doctype(
                f'<!DOCTYPE b [<!ENTITY a "{"a" * 50_000}">]>', granted(number).replace(number, "&a;" * 2000)
            ),
            "DTD",
        ),
        "undeclared-entity": (batch(reference), "not defined"),
        "too-many-elements": (
            batch(granted(number).replace("</v:Unit>", "</v:Unit>" + "<v:X/>" * 300)),
            "200",
        ),
        "too-many-attributes": (
            batch(
                granted(number).replace(
                    "<v:Unit>", "<v:Unit " + " ".join(f'a{i}="1"' for i in range(300)) + ">"
                )
            ),
            "200",
        ),
        "attributes-on-the-root": (
            batch(granted(number)).replace(
                b"<VoucherDecisionBatch ",
                b"<VoucherDecisionBatch " + b" ".join(b'a%d="1"' % i for i in range(300)) + b" ",
            ),
            "root",
        ),
        # Deeper than the default HUB_MAX_XML_DEPTH (32) well before 200 nodes are read.
        "deep": (
            batch(granted(number).replace("</v:Unit>", "</v:Unit>" + nested(195))),
            "nests XML elements deeper than 32 levels, the XML depth limit",
        ),
        "too-many-records": (batch(*(granted(uid("HOSTILE")) for _ in range(MAX_RECORDS + 1))), "records"),
        "too-large": (
            batch(granted(number)).replace(b"\n  <v:", b"\n<!--" + b"x" * MAX_BYTES + b"-->\n  <v:", 1),
            "bytes",
        ),
    }


def test_hostile_xml_files_are_refused_whole_naming_the_problem(
    hub: Hub, strict: tuple[Path, object], listener: str, engine: Engine
) -> None:
    data, process = strict
    for name, (content, word) in xml_cases(listener).items():
        started = time.monotonic()
        receipt = receipt_of(put(data, "county", f"{name}.xml", content), timeout=60)
        assert time.monotonic() - started < 30, f"{name} took {time.monotonic() - started:.0f} s"
        assert receipt.get("error") and word in receipt["error"], (name, receipt)
        assert (receipt["records"], receipt["accepted"], receipt["messages"]) == (0, 0, []), (name, receipt)
        assert "root:" not in receipt["error"] and "fetched" not in receipt["error"], receipt
        assert appears(data / "error" / "county" / f"{name}.xml"), name  # moved just after the receipt
        sha = hashlib.sha256(content).hexdigest()
        assert stored_from(engine, f"file-{sha[:32]}-") == 0, name
    assert _Listener.seen == [], _Listener.seen  # no entity or DTD was ever fetched
    assert process.poll() is None  # type: ignore[attr-defined]
    # The adapter is healthy: the next good file is read and stored.
    good = receipt_of(put(data, "county", "good.xml", batch(granted(uid("HOSTILE")))))
    assert (good["records"], good["accepted"], good.get("error")) == (1, 1, None), good


def test_deeper_than_libxml2_allows_is_refused_under_the_default_limits(hub: Hub) -> None:
    # Under the session hub's defaults (10,000 nodes a record), HUB_MAX_XML_DEPTH (32) speaks
    # first, while the file is streamed: libxml2's own 256 levels are never reached.
    content = batch(granted(uid("HOSTILE")).replace("</v:Unit>", "</v:Unit>" + nested(1000)))
    receipt = receipt_of(drop(hub, "county", f"deep-{uid('f')}.xml", content))
    assert receipt["accepted"] == 0 and receipt["records"] == 0, receipt
    assert "nests XML elements deeper than 32 levels, the XML depth limit" in receipt["error"], receipt


def payments(*rows: str) -> bytes:
    return ("\r\n".join([PAYMENTS, *rows]) + "\r\n").encode()


def test_csv_files_over_the_limits_are_refused_whole(strict: tuple[Path, object], engine: Engine) -> None:
    data, _ = strict
    row = f"PS-{ORGANISER.replace('-', '')}-HOSTILE-202611;20.11.2026;10,00;1232"
    cases = {
        "too-many.csv": (payments(*([row] * (MAX_RECORDS + 1))), f"{MAX_RECORDS + 1} records"),
        "too-large.csv": (payments(*([row] * 10)) + b"\r\n" * MAX_BYTES, "bytes"),
        "nul-in-head.csv": (payments(row).replace(b"10,00", b"10\x0000"), "NUL"),
    }
    for name, (content, word) in cases.items():
        receipt = receipt_of(put(data, "county", name, content))
        assert receipt.get("error") and word in receipt["error"], (name, receipt)
        assert (receipt["records"], receipt["accepted"]) == (0, 0), (name, receipt)
        sha = hashlib.sha256(content).hexdigest()
        assert stored_from(engine, f"file-{sha[:32]}-") == 0, name
    # Blank lines are not records: exactly the limit is read.
    fine = receipt_of(put(data, "county", "at-the-limit.csv", payments(*([row, ";;;"] * MAX_RECORDS))))
    assert fine["records"] == MAX_RECORDS and not fine.get("error"), fine


def test_csv_oddities_past_the_head_reject_their_record_only(strict: tuple[Path, object]) -> None:
    data, process = strict
    # Blank lines fill the 64 KiB head that decides the encoding; the odd records come after.
    padding = ";;;\r\n" * 20_000
    bad_id = "PS-NONE-" + uid("x")
    lines = [
        PAYMENTS,
        padding,
        f"{bad_id};20.11.2026;10\x0000;1232",  # a NUL byte
        f"{bad_id}\xff;20.11.2026;10,00;1232",  # not UTF-8 (the head said UTF-8)
        f"{bad_id};20.11.2026;{'9' * 100_000};1232",  # a line over 64 K characters
        f"{bad_id};20.11.2026;1e5;1232",  # an exponent
        f"{bad_id};20.11.2026;{'9' * 5000},00;1232",  # thousands of digits
        # last: a quoted field over the csv module's 131,072 characters, in lines under 64 K
        f'"{bad_id}\n{"x" * 50_000}\n{"x" * 50_000}\n{"x" * 50_000}";20.11.2026;1,00;1232',
    ]
    content = "\r\n".join(lines).encode().replace("\xff".encode(), b"\xff")
    receipt = receipt_of(put(data, "county", "odd.csv", content))
    assert not receipt.get("error"), receipt
    errors = {
        r["record"]: " ".join(f"{e['field']}: {e['message']}" for e in r["errors"])
        for r in receipt["rejected"]
    }
    assert (receipt["records"], receipt["accepted"], sorted(errors)) == (6, 0, [1, 2, 3, 4, 5, 6]), receipt
    assert "NUL" in errors[1], errors
    assert "UTF-8" in errors[2], errors
    assert "longer than" in errors[3], errors
    assert "amount: must be a number" in errors[4] and "amount: " in errors[5], errors
    assert "well-formed CSV" in errors[6], errors
    assert process.poll() is None  # type: ignore[attr-defined]


def test_the_session_hub_is_healthy_after_all_of_it(hub: Hub) -> None:
    assert httpx.get(f"{hub.url}/health/ready", timeout=10).status_code == 200
