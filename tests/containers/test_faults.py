"""Faults under a steady load through lb: `docker kill` of one worker and one api replica, and
`docker compose restart rabbitmq`. A client that retries on 503 and on connection errors (with the
same message, so the same message_id) sees no failed request, every accepted message is applied
exactly once, and the killed containers come back by their restart policy."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.containers.conftest import URL, Stack
from tests.containers.test_basics import grant_and_assign
from tests.messages import ORGANISER, delivery, uid

pytestmark = pytest.mark.containers

GIVE_UP_S = 90.0  # one message's retries; far above a replica's or the broker's restart


@dataclass
class Load:
    """A bounded load generator: `threads` senders, each at most `rate` deliveries per second."""

    secret: str
    voucher: str
    threads: int = 2
    rate: float = 15.0
    accepted: dict[str, str] = field(default_factory=dict)  # message_id -> hub_id
    failures: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)  # the transport errors retried, for the report
    retries: dict[str, int] = field(default_factory=dict)  # why -> how often
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        """Start the sender threads."""
        for _ in range(self.threads):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self.workers.append(thread)

    def finish(self) -> None:
        """Stop sending (each thread finishes the message in hand) and wait for the threads."""
        self.stop.set()
        for thread in self.workers:
            thread.join(timeout=GIVE_UP_S + 10)

    def _count(self, why: str) -> None:
        with self.lock:
            self.retries[why] = self.retries.get(why, 0) + 1

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.secret}"}
        client = httpx.Client(base_url=URL, headers=headers, timeout=30)
        try:
            while not self.stop.is_set():
                began = time.monotonic()
                self._send_one(client, delivery(self.voucher, "1"))
                time.sleep(max(0.0, 1 / self.rate - (time.monotonic() - began)))
        finally:
            client.close()

    def _send_one(self, client: httpx.Client, raw: dict[str, Any]) -> None:
        deadline = time.monotonic() + GIVE_UP_S
        while True:
            try:
                answer = client.post("/api/v1/messages", json=raw)
            except httpx.TransportError as exc:
                why = type(exc).__name__
                with self.lock:
                    self.seen.append(f"{time.strftime('%H:%M:%S')} {why}: {exc}")
            else:
                if answer.status_code in (200, 202):
                    with self.lock:
                        self.accepted[raw["message_id"]] = answer.json()["hub_id"]
                    return
                if answer.status_code != 503:
                    with self.lock:
                        self.failures.append(f"{raw['message_id']}: {answer.status_code} {answer.text[:300]}")
                    return
                why = "503"
            self._count(why)
            if time.monotonic() > deadline:
                with self.lock:
                    self.failures.append(f"{raw['message_id']}: gave up after {GIVE_UP_S}s ({why})")
                return
            time.sleep(0.2)


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


def applied_exactly_once(stack: Stack, load: Load, voucher: str, timeout: float = 180) -> None:
    """The voucher shows one delivery of 1 hour per accepted message, no more, no less."""
    assert load.accepted, "the load generator got nothing accepted"
    with stack.client("county", timeout=30) as county:
        deadline = time.monotonic() + timeout
        while True:
            state = county.get(f"/api/v1/vouchers/{ORGANISER}/{voucher}").json()
            if len(state["deliveries"]) >= len(load.accepted):
                break
            assert time.monotonic() < deadline, (
                f"{len(state['deliveries'])} of {len(load.accepted)} deliveries applied; {stack.logs()}"
            )
            time.sleep(1)
        time.sleep(3)  # nothing more arrives later (a message applied twice would)
        state = county.get(f"/api/v1/vouchers/{ORGANISER}/{voucher}").json()
    assert len(state["deliveries"]) == len(load.accepted)
    assert state["quantity_used"] == f"{len(load.accepted)}.00"
    events = [d["event_id"] for d in state["deliveries"]]
    assert len(set(events)) == len(events)


def fault_voucher(stack: Stack) -> str:
    """A voucher with room for every delivery of a test."""
    number = uid("CTK")
    grant_and_assign(stack, number, quantity="100000")
    return number


@pytest.fixture(scope="module")
def loaded(stack: Stack) -> Stack:
    """The organiser's system and the provider, added with `docker compose exec -T api hub clients add`."""
    return stack.senders()


def kill_under_load(stack: Stack, kill: Callable[[str], None]) -> tuple[list[str], dict[str, int]]:
    """Under load, `kill` one worker, then one api replica; no failed request, each message once."""
    voucher = fault_voucher(stack)
    load = Load(stack.secrets["provider"], voucher)
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
    print(f"\n{len(load.accepted)} accepted, retries {load.retries}, failures {len(load.failures)}")
    print("\n".join(load.seen[:5]))
    assert load.failures == []
    applied_exactly_once(stack, load, voucher)
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
    voucher = fault_voucher(loaded)
    load = Load(loaded.secrets["provider"], voucher)
    load.start()
    try:
        time.sleep(4)
        loaded.compose("restart", "rabbitmq", timeout=180)
        time.sleep(8)
    finally:
        load.finish()
    print(f"\nrabbitmq restart: {len(load.accepted)} accepted, retries {load.retries}")
    assert load.failures == []
    applied_exactly_once(loaded, load, voucher)
    for container in loaded.containers("worker") + loaded.containers("api"):
        wait_healthy(container)
