"""Faults under a steady load through lb: `docker kill` of one worker and one api replica, and
`docker compose restart rabbitmq`. A client that retries on 503 and on connection errors (with the
same message, so the same message_id) sees no failed request, every accepted message is applied
exactly once, and the killed containers come back by their restart policy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal

import pytest

from tests.containers.conftest import URL, Stack
from tests.containers.test_basics import wait_status
from tests.load import Load
from tests.messages import ORGANISER, assigned, granted, uid

pytestmark = pytest.mark.containers

VOUCHERS = int(os.environ.get("HUB_TEST_LOAD_VOUCHERS", "40"))  # the load spreads over these
MIN_RATE = float(os.environ.get("HUB_TEST_LOAD_MIN_RATE", "3"))  # accepted/s below: a dead load


def container_state(container: str) -> tuple[bool, int, str]:
    """(running, restart count, health) of one container."""
    out = subprocess.run(
        [
            "docker",
            "inspect",
            "-f",
            "{{.State.Running}} {{.RestartCount}} {{if .State.Health}}{{.State.Health.Status}}{{end}}",
            container,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return out[0] == "true", int(out[1]), out[2] if len(out) > 2 else ""


def wait_healthy(container: str, timeout: float = 120) -> tuple[bool, int, str]:
    """Wait until the container runs and is healthy again."""
    deadline = time.monotonic() + timeout
    state = container_state(container)
    while not (state[0] and state[2] in ("healthy", "")):
        assert time.monotonic() < deadline, f"{container} not back: {state}"
        time.sleep(1)
        state = container_state(container)
    return state


def applied_exactly_once(stack: Stack, load: Load, timeout: float = 240) -> None:
    """Each voucher of the load shows one delivery of 1 hour per message accepted for it; and
    the load was a load (at least HUB_TEST_LOAD_MIN_RATE accepted per second on average)."""
    seconds = load.ended - load.began
    assert len(load.accepted) >= MIN_RATE * seconds, f"the load was too thin: {load.report('load')}"
    each_applied_once(stack, Counter(load.voucher_of.values()), timeout)


def each_applied_once(stack: Stack, expected: Counter[str], timeout: float = 240) -> None:
    """Each voucher shows exactly its expected number of 1-hour deliveries, no more, no less,
    each event once (read back over REST, not from any log)."""
    with stack.client("county", timeout=60) as county:
        deadline = time.monotonic() + timeout
        for voucher, want in sorted(expected.items()):
            while True:
                state = county.get(f"/api/v1/vouchers/{ORGANISER}/{voucher}").json()
                if len(state["deliveries"]) >= want:
                    break
                assert time.monotonic() < deadline, (
                    f"{voucher}: {len(state['deliveries'])} of {want} deliveries applied; {stack.logs()}"
                )
                time.sleep(1)
        time.sleep(3)  # nothing more arrives later (a message applied twice would)
        for voucher, want in sorted(expected.items()):
            state = county.get(f"/api/v1/vouchers/{ORGANISER}/{voucher}").json()
            assert len(state["deliveries"]) == want, (voucher, len(state["deliveries"]), want)
            assert Decimal(state["quantity_used"]) == want, (voucher, state["quantity_used"], want)
            events = [d["event_id"] for d in state["deliveries"]]
            assert len(set(events)) == len(events), voucher


def fault_vouchers(stack: Stack, n: int = VOUCHERS, quantity: str = "100000") -> list[str]:
    """`n` vouchers granted and assigned (all grants sent, then all assignments), each with room
    for every delivery of a test. The load spreads over them as real traffic does: the hub
    serialises the deliveries of one voucher (its row lock), so one voucher for everything
    measures a convoy on one row, not the stack."""
    numbers = [uid("CTK") for _ in range(n)]
    with stack.client("county") as county:
        for build in (lambda v: granted(v, quantity=quantity), lambda v: assigned(v, price="30.00")):
            ids = []
            for number in numbers:
                answer = county.post("/api/v1/messages", json=build(number))
                assert answer.status_code == 202, answer.text
                ids.append(answer.json()["hub_id"])
            for hub_id in ids:
                wait_status(county, hub_id, {"applied"}, timeout=120)
    return numbers


@pytest.fixture(scope="module")
def loaded(stack: Stack) -> Stack:
    """The organiser's system and the provider, added with `docker compose exec -T api hub clients add`."""
    return stack.senders()


def kill_under_load(stack: Stack, kill: Callable[[str], None]) -> tuple[list[str], dict[str, int]]:
    """Under load, `kill` one worker, then one api replica; no failed request, each message once."""
    load = Load(stack.secrets["provider"], fault_vouchers(stack), URL)
    victims = [stack.containers("worker")[0], stack.containers("api")[0]]
    restarts = {c: container_state(c)[1] for c in victims}
    load.start()
    try:
        time.sleep(4)
        print(f"\n{time.strftime('%H:%M:%S')} killing worker {victims[0][:12]}")
        kill(victims[0])
        time.sleep(8)
        print(f"{time.strftime('%H:%M:%S')} killing api {victims[1][:12]}")
        kill(victims[1])
        time.sleep(10)
    finally:
        load.finish()
    print("\n" + load.report("kills"))
    print("\n".join(load.seen[:5]))
    assert load.failures == []
    applied_exactly_once(stack, load)
    return victims, restarts


def test_docker_kill_of_a_worker_and_an_api_replica_under_load(loaded: Stack) -> None:
    def docker_kill(container: str) -> None:
        subprocess.run(["docker", "kill", container], check=True, capture_output=True)

    victims, _ = kill_under_load(loaded, docker_kill)
    # Docker counts `docker kill` as a manual stop: no restart policy starts the container again
    # (checked on this engine); `docker compose start` (or `up -d`) does, as an operator would.
    assert [container_state(c)[0] for c in victims] == [False, False]
    loaded.compose("start", "worker", "api")
    for container in victims:
        wait_healthy(container)
    assert len(loaded.containers("worker")) == 2 and len(loaded.containers("api")) == 2


def test_crash_of_a_worker_and_an_api_replica_under_load_restarts_them(loaded: Stack) -> None:
    def crash(container: str) -> None:
        # SIGKILL of the container's own process from the host: what an OOM kill or a segfault does.
        pid = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Pid}}", container],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        os.kill(int(pid), signal.SIGKILL)

    victims, restarts = kill_under_load(loaded, crash)
    for container in victims:
        running, count, _ = wait_healthy(container)
        assert running and count == restarts[container] + 1, (container, count)


def test_rabbitmq_restart_under_load(loaded: Stack) -> None:
    load = Load(loaded.secrets["provider"], fault_vouchers(loaded), URL)
    load.start()
    try:
        time.sleep(4)
        loaded.compose("restart", "rabbitmq", timeout=180)
        time.sleep(8)
    finally:
        load.finish()
    print("\n" + load.report("rabbitmq restart"))
    assert load.failures == []
    applied_exactly_once(loaded, load)
    for container in loaded.containers("worker") + loaded.containers("api"):
        wait_healthy(container)


def holder_of_work_file(stack: Stack) -> str | None:
    """The `files` container with a claimed file of work/ open (its /proc/*/fd), or None."""
    for container in stack.containers("files"):
        done = subprocess.run(
            ["docker", "exec", container, "sh", "-c", "ls -l /proc/[0-9]*/fd 2>/dev/null"],
            capture_output=True,
            text=True,
        )
        if "/data/files/work/" in done.stdout:
            return container
    return None


def test_crash_of_a_file_adapter_in_the_middle_of_a_file_under_load(loaded: Stack) -> None:
    """A big CSV is dropped; once some of its rows are applied, the adapter reading it is
    SIGKILLed while REST load runs. The file is read to the end (by the other adapter or the
    restarted one, after the claim's lease), every row is applied exactly once, the receipt
    counts every row, and the crashed container is restarted."""
    rows = int(os.environ.get("HUB_TEST_FILE_ROWS", "10000"))
    file_vouchers = fault_vouchers(loaded)
    provider = loaded.names["provider"]
    inbox = loaded.files_dir / "inbox" / provider
    inbox.mkdir(parents=True, exist_ok=True)
    lines = ["event_id;organiser;voucher_number;order_number;service_date;quantity;unit;price"]
    expected: Counter[str] = Counter()
    for i in range(rows):
        voucher = file_vouchers[i % len(file_vouchers)]
        expected[voucher] += 1
        lines.append(f"{uid('evb')}-{i};{ORGANISER};{voucher};;03.11.2026;1;hour;")
    load = Load(loaded.secrets["provider"], fault_vouchers(loaded), URL)
    receipt = loaded.files_dir / "outbox" / provider / "receipts" / "iso.csv.receipt.json"
    load.start()
    try:
        (inbox / "iso.csv.part").write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
        (inbox / "iso.csv.part").rename(inbox / "iso.csv")
        deadline = time.monotonic() + 180
        with loaded.client("county") as county:  # mid-file: some rows applied, the file still open
            while True:
                assert not receipt.exists(), "the file was finished before it could be interrupted"
                assert time.monotonic() < deadline, f"nothing of the file applied; {loaded.logs()}"
                first = county.get(f"/api/v1/vouchers/{ORGANISER}/{file_vouchers[0]}").json()
                victim = holder_of_work_file(loaded)
                if victim is not None and Decimal(first["quantity_used"]) > 0:
                    break
                time.sleep(0.5)
        restarts = container_state(victim)[1]
        pid = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Pid}}", victim], check=True, capture_output=True, text=True
        ).stdout.strip()
        os.kill(int(pid), signal.SIGKILL)
        print(f"\n{time.strftime('%H:%M:%S')} SIGKILL files {victim[:12]} mid-file")
        deadline = time.monotonic() + 300  # the claim's lease (60 s) runs out, then it is read again
        while not receipt.exists():
            assert time.monotonic() < deadline, f"the file was never finished; {loaded.logs()}"
            time.sleep(1)
    finally:
        load.finish()
    print(load.report("file adapter crash"))
    assert load.failures == []
    answer = json.loads(receipt.read_text(encoding="utf-8"))
    assert (answer["records"], answer["accepted"], answer["rejected"]) == (rows, rows, []), answer
    assert 0 < answer["duplicates"] < rows, answer  # re-read after the crash: the stored part once
    running, count, _ = wait_healthy(victim)
    assert running and count == restarts + 1
    applied_exactly_once(loaded, load, timeout=600)  # behind the file's rows in the queue
    each_applied_once(loaded, expected, timeout=600)
