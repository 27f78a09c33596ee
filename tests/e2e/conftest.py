"""End-to-end fixtures: `hub run` as a real process, real senders made with `hub clients add`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import fresh_database, fresh_vhost, hub_environment
from tests.messages import ORGANISER, OTHER_ORGANISER, OTHER_PROVIDER, PROVIDER

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hub_cli(env: dict[str, str], *args: str) -> str:
    """Run `hub ARGS` as a subprocess and return its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "psop_hub.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@dataclass
class Hub:
    """A running `hub run` process tree and the senders registered with it."""

    process: subprocess.Popen[bytes]
    url: str
    env: dict[str, str]
    log: Path
    secrets: dict[str, str] = field(default_factory=dict)

    def client(self, who: str | None) -> httpx.Client:
        """An HTTP client authenticated as the named sender (or anonymous)."""
        headers = {"Authorization": f"Bearer {self.secrets[who]}"} if who else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def add_client(self, name: str, *args: str) -> str:
        """Register a sender with the real CLI; returns its secret (the last line)."""
        secret = hub_cli(self.env, "clients", "add", name, *args).strip().splitlines()[-1]
        self.secrets[name] = secret
        return secret

    def workers(self) -> list[psutil.Process]:
        """The live worker processes of this hub."""
        children = psutil.Process(self.process.pid).children(recursive=True)
        return [p for p in children if p.is_running() and "worker" in p.cmdline()]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40) -> int:
        """Stop the hub and return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._dump_stacks()
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def _dump_stacks(self) -> None:
        """A hub that does not stop in time: every one of its processes' Python stacks (py-spy)
        at the end of its log, to tell where it hangs."""
        spy = Path(sys.executable).with_name("py-spy")
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return  # it stopped after all
        tree = [self.process.pid] + [c.pid for c in children]
        with self.log.open("ab") as out:
            out.write(b"\n--- the hub did not stop in time: py-spy dump of each process ---\n")
            for pid in tree:
                out.flush()
                subprocess.run(
                    [str(spy), "dump", "--pid", str(pid)], stdout=out, stderr=out, timeout=30, check=False
                )


def start_hub(hub_env: dict[str, str], log: Path, **extra: str) -> Hub:
    """Start `hub run` and wait until it is ready."""
    port = free_port()
    env = {**os.environ, **hub_env, "HUB_HTTP_PORT": str(port), **extra}
    out = log.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "psop_hub.cli", "run"], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
    )
    hub = Hub(process=process, url=f"http://127.0.0.1:{port}", env=env, log=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"hub run exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{hub.url}/health/ready", timeout=2).status_code == 200 and len(hub.workers()) >= 2:
                return hub
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    hub.stop()
    pytest.fail(f"hub run did not become ready:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def e2e_env(run_id: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A database and vhost of the e2e hubs' own: their relays and workers must never pick up
    what the in-process integration tests store in theirs."""
    with fresh_database(f"psop_e2e_{run_id}") as db, fresh_vhost(f"psop_e2e_{run_id}") as amqp:
        yield hub_environment(db, amqp, str(tmp_path_factory.mktemp("e2edata")))


@pytest.fixture(scope="session")
def hub(e2e_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """One hub for the e2e session, with a system, a provider and an admin of each kind."""
    running = start_hub(e2e_env, tmp_path_factory.mktemp("hub") / "hub.log")
    running.add_client("county", "--role", "system", "--organiser", ORGANISER)
    running.add_client("other-county", "--role", "system", "--organiser", OTHER_ORGANISER)
    running.add_client("provider", "--role", "provider", "--provider", PROVIDER)
    running.add_client("other-provider", "--role", "provider", "--provider", OTHER_PROVIDER)
    running.add_client("admin", "--role", "admin")
    yield running
    code = running.stop()
    assert code == 0, running.log.read_text()[-8000:]


def wait_for_status(
    client: httpx.Client, hub_id: str, wanted: set[str], timeout: float = 30
) -> dict[str, object]:
    """Poll a message until its status is one of `wanted`."""
    deadline = time.monotonic() + timeout
    body: dict[str, object] = {}
    while time.monotonic() < deadline:
        body = client.get(f"/api/v1/messages/{hub_id}").json()
        if body.get("status") in wanted:
            return body
        time.sleep(0.1)
    raise AssertionError(f"message {hub_id} still {body.get('status')}: {body}")


def ready_vouchers(hub: Hub, count: int, prefix: str = "V") -> list[str]:
    """Vouchers granted (room for 100,000 hours) and assigned to PROVIDER, each applied."""
    from tests.messages import assigned, granted, uid

    numbers = [uid(prefix) for _ in range(count)]
    with hub.client("county") as county:
        for number in numbers:
            for raw in (granted(number, quantity="100000"), assigned(number)):
                wait_for_status(
                    county, county.post("/api/v1/messages", json=raw).json()["hub_id"], {"applied"}
                )
    return numbers
