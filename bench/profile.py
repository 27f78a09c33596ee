"""Where the hub's CPU goes per message: py-spy (`--gil`) on the API and the workers under load.

Run from the repository root (it prints figures and asserts nothing):

    .venv/bin/python bench/profile.py [--messages 3000] [--senders 32] [--top 25] [--out DIR] [--soap]

One `hub run` (bench/run.py's Hub), `--messages` voucher.granted through REST from `--senders`
async senders, while `py-spy record --gil --idle=false` samples every API and worker process.
Prints the CPU ms per message per process (bench/meter.py) and, per component, the functions
that cost most: by self time, and by total time among the hub's own and its libraries' frames.
The raw collapsed stacks are kept in `--out` (flame graphs: `flamegraph.pl` or speedscope).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import loadgen  # noqa: E402
from ingest import wait_final  # noqa: E402
from meter import CpuMeter, table  # noqa: E402
from run import Hub, applied_row, rest_ids, soap_ids  # noqa: E402

from tests.e2e.test_soap import decision_envelope, soap_headers  # noqa: E402
from tests.e2e.test_soap import granted as soap_granted  # noqa: E402
from tests.messages import granted, uid  # noqa: E402

PY_SPY = Path(sys.executable).with_name("py-spy")


def frames_of(path: Path) -> Counter[tuple[str, ...]]:
    """Collapsed stacks (`a;b;c N`) as a counter of frame tuples, root first."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            stacks[tuple(stack.split(";"))] += int(n)
    return stacks


def short(frame: str) -> str:
    """`function (path/to/file.py:NN)` without the site-packages prefix or the line."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "psop_hub/", "lib/python3.11/"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{name} ({where})"


def report(name: str, stacks: Counter[tuple[str, ...]], top: int, per_message: float) -> list[str]:
    total = sum(stacks.values())
    if not total:
        return [f"{name}: no samples"]
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for stack, n in stacks.items():
        own[short(stack[-1])] += n
        for frame in {short(f) for f in stack}:
            inclusive[frame] += n
    lines = [f"== {name}: {total} samples with the GIL held; {per_message:.2f} CPU ms per message =="]
    lines.append("  self:")
    lines += [f"    {n / total:6.1%}  {f}" for f, n in own.most_common(top)]
    lines.append("  total (frames under psop_hub, fastapi, starlette, sqlalchemy, psycopg, pika, dramatiq):")
    keep = (
        "psop_hub",
        "fastapi",
        "starlette",
        "sqlalchemy",
        "psycopg",
        "pika",
        "dramatiq",
        "uvicorn",
        "anyio",
    )
    ranked = [(f, n) for f, n in inclusive.most_common() if any(k in f for k in keep)]
    lines += [f"    {n / total:6.1%}  {f}" for f, n in ranked[:top]]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--senders", type=int, default=32)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "psop-profile")
    parser.add_argument("--wait", type=float, default=300.0)
    parser.add_argument("--soap", action="store_true", help="SubmitVoucherDecision through SOAP instead")
    a = parser.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    with ExitStack() as undo:
        hub = Hub(undo, lines)
        parts = hub.components()
        spies: list[tuple[str, Path, subprocess.Popen[bytes]]] = []
        for part in ("API", "workers"):
            for k, process in enumerate(parts.get(part, [])):
                out = a.out / f"{part}-{k}.txt"
                cmd = [str(PY_SPY), "record", "--gil", "--nonblocking", "-r", str(a.rate), "-f", "raw"]
                cmd += ["-o", str(out), "-p", str(process.pid)]
                spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                spies.append((part, out, spy))
        time.sleep(1.0)  # py-spy attaches
        if a.soap:
            bodies = [decision_envelope(soap_granted(uid("prof-s")), hub.soap) for _ in range(a.messages)]
            url, headers, ok, name = f"{hub.base}/soap/v1", soap_headers(), (200,), "hub SOAP"
        else:
            bodies = [json.dumps(granted(uid("prof-v"))).encode() for _ in range(a.messages)]
            url, headers, ok, name = f"{hub.base}/api/v1/messages", hub.headers, (202,), "hub REST"
        with CpuMeter(hub.groups) as meter:
            load = loadgen.send(url, bodies, headers, a.senders, ok=ok)
            ids = soap_ids(load) if a.soap else rest_ids(load)
            wait_final(hub.db, ids, a.wait)
        row = applied_row(hub, f"{name}: voucher.granted (profiled)", load, ids, meter, a.wait)
        for _, _, spy in spies:
            spy.send_signal(2)  # SIGINT: py-spy writes its file
        for _, _, spy in spies:
            spy.wait(timeout=60)
    print(table([row]))
    for part in ("API", "workers"):
        merged: Counter[tuple[str, ...]] = Counter()
        for p, out, _ in spies:
            if p == part and out.exists():
                merged.update(frames_of(out))
        ms = row.cpu_ms.get(part, 0.0) if row.cpu_ms else 0.0
        print("\n".join(report(part, merged, a.top, ms)))
    print(f"collapsed stacks in {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
