"""SOAP bodies whose client has gone: how much CPU the API spends after the disconnect.

Run from the repository root (it prints figures and asserts nothing):

    .venv/bin/python bench/soap_gone.py [--calls 20]

It creates its own database and vhost `psop_bench_<random>`, migrates it, registers a system
client and starts one `hub api` process (nothing else: no worker, no file adapter), then, for each
kind of hostile SOAP body that the limits let through to validation (authenticated, within
HUB_MAX_BODY_BYTES and HUB_MAX_XML_NODES),

* answered: one call that waits for its fault: how long it takes and the API's CPU for it;
* gone: `--calls` clients each send the whole body over a raw socket and close the connection at
  once, without reading a byte; the API process's CPU is sampled from the last close until it
  has not grown for 1.5 s: the CPU seconds spent after the clients were gone, in all and per call.

Everything it creates is removed at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ingest import HUB, database_and_vhost, free_port, hub_env, spawn, wait_ready  # noqa: E402

ORGANISER = "2077474-0"
HETU = "131052-308T"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
NS = "urn:psop-hub:soap:v1"


def record(inside: str = "", attributes: str = "") -> bytes:
    fields = (
        f"<t:MessageId>{uuid.uuid4()}</t:MessageId><t:DecisionType>GRANTED</t:DecisionType>"
        f"<t:VoucherNumber>V-GONE</t:VoucherNumber><t:Organiser>{ORGANISER}</t:Organiser>"
        "<t:DecisionDate>2026-11-01</t:DecisionDate>"
        f"<t:Client><t:Hetu>{HETU}</t:Hetu><t:HomeMunicipality>091</t:HomeMunicipality></t:Client>"
        f"<t:Service><t:Code>KH01</t:Code><t:Name>Kotihoito</t:Name></t:Service>{inside}"
        "<t:Unit>hour</t:Unit><t:UnitValue>25.00</t:UnitValue><t:Quantity>10</t:Quantity>"
        "<t:ValidFrom>2026-11-01</t:ValidFrom><t:ValidTo>2027-10-31</t:ValidTo>"
    )
    return (
        f'<soap:Envelope xmlns:soap="{SOAP11}" xmlns:t="{NS}"><soap:Body><t:SubmitVoucherDecision>'
        f"<t:VoucherDecision {attributes}>{fields}</t:VoucherDecision></t:SubmitVoucherDecision>"
        "</soap:Body></soap:Envelope>"
    ).encode()


BODIES: dict[str, Callable[[], bytes]] = {
    "9,900 disallowed attributes": lambda: record(attributes=" ".join(f'a{i}="x"' for i in range(9_900))),
    "9,900 unexpected elements": lambda: record(inside="<t:X/>" * 9_900),
    "4,900 elements, 4,900 attributes": lambda: record(
        inside="".join(f'<t:X b="{i}"/>' for i in range(4_900))
    ),
    "1 MB of text in one field": lambda: record(inside=f"<t:X>{'131052-308T ' * 80_000}</t:X>"),
}


def request_head(port: int, body: bytes, auth: str) -> bytes:
    return (
        f"POST /soap/v1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: text/xml; charset=utf-8\r\n"
        f"Authorization: Basic {auth}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()


def cpu_s(process: psutil.Process) -> float:
    t = process.cpu_times()
    return float(t.user + t.system)


def settled(process: psutil.Process, quiet_s: float = 1.5, timeout_s: float = 120) -> float:
    """The process's CPU seconds once they have not grown for `quiet_s`."""
    deadline = time.monotonic() + timeout_s
    last, since = cpu_s(process), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = cpu_s(process)
        if now - last > 0.005:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return now
    return cpu_s(process)


def measure(port: int, api: psutil.Process, auth: str, body: bytes, calls: int) -> tuple[float, float, float]:
    """(seconds for one answered call, its CPU s, CPU s spent after `calls` clients have gone)."""
    base = settled(api)
    started = time.monotonic()
    answer = httpx.post(
        f"http://127.0.0.1:{port}/soap/v1",
        content=body,
        headers={"Content-Type": "text/xml; charset=utf-8", "Authorization": f"Basic {auth}"},
        timeout=300,
    )
    took = time.monotonic() - started
    assert answer.status_code == 500 and "soap:Client" in answer.text, answer.text[:300]
    one = settled(api) - base
    head = request_head(port, body, auth)
    sockets = []
    for _ in range(calls):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(head + body)
        sockets.append(sock)
    for sock in sockets:  # gone, without reading a byte of the answer
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
    closed = cpu_s(api)
    after = settled(api) - closed
    return took, one, after


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=20, help="clients that send a body and go, per kind")
    parser.add_argument("--show-log", action="store_true", help="print the API's log at the end")
    a = parser.parse_args()
    name = f"psop_bench_{uuid.uuid4().hex[:10]}"
    with ExitStack() as undo:
        tmp = Path(undo.enter_context(tempfile.TemporaryDirectory(prefix="psop_bench_")))
        database_and_vhost(undo, name)
        port = free_port()
        env = {**os.environ, **hub_env(name, port, tmp)}
        subprocess.run([*HUB, "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)
        out = subprocess.run(
            [*HUB, "clients", "add", "gone", "--role", "system", "--organiser", ORGANISER],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        auth = base64.b64encode(f"gone:{out.strip().splitlines()[-1]}".encode()).decode()
        hub = spawn(undo, "hub api", [*HUB, "api"], env, tmp / "api.log")
        wait_ready(hub, f"http://127.0.0.1:{port}", path="/health/live")
        api = psutil.Process(hub.pid)
        columns = f"{'answered: s':>12} {'CPU s':>7} {'gone: CPU s after':>18} {'per call':>9}"
        print(f"{'body':<34} {'bytes':>9} {columns}")
        for label, build in BODIES.items():
            body = build()
            took, one, after = measure(port, api, auth, body, a.calls)
            print(
                f"{label:<34} {len(body):>9} {took:>12.3f} {one:>7.3f} {after:>18.3f} {after / a.calls:>9.3f}"
            )
        log = (tmp / "api.log").read_text(errors="replace")
        print(f"api log: {len(log.splitlines())} lines, {log.count('Traceback')} tracebacks")
        if a.show_log:
            print(log)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
