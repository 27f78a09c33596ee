"""The container stack as an operator runs it: `docker compose up -d --build` from the repository
root, traffic only through lb on 127.0.0.1:$HUB_PORT, senders made with
`docker compose exec -T api hub clients add`.

Not part of the plain `pytest` run: these tests start with HUB_TEST_CONTAINERS=1 (`make test-containers`).
With HUB_TEST_CONTAINERS=1 and no working Docker they FAIL, unless HUB_SKIP_CONTAINERS=1.

Environment: HUB_PORT (default 18000 here), HUB_COMPOSE (default `docker compose`; `docker-compose` runs
them with Compose 1.29), HUB_TEST_PROJECT (the compose project, default psop-ctest: a developer's own
stack is left alone), HUB_KEEP_STACK=1 (leave the stack up after the run), HUB_REUSE_STACK=1 (use
a stack of that project that is up and ready already, instead of starting from nothing).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
ENABLED = os.environ.get("HUB_TEST_CONTAINERS") == "1"
MAY_SKIP = os.environ.get("HUB_SKIP_CONTAINERS") == "1"
PORT = int(os.environ.get("HUB_PORT", "18000"))
COMPOSE = shlex.split(os.environ.get("HUB_COMPOSE", "docker compose"))
PROJECT = os.environ.get("HUB_TEST_PROJECT", "psop-ctest")
URL = f"http://127.0.0.1:{PORT}"
RUN = uuid.uuid4().hex[:8]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "containers: runs the docker compose stack (HUB_TEST_CONTAINERS=1)")
    config.addinivalue_line("markers", "cluster: runs the three-node RabbitMQ layout (after the others)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The cluster stack's tests last: the single-host stack is stopped before it starts.
    items.sort(key=lambda item: "cluster" in item.keywords)
    if ENABLED:
        return
    skip = pytest.mark.skip(
        reason="CONTAINER TESTS NOT RUN: they build and start the docker compose stack; "
        "run them with HUB_TEST_CONTAINERS=1 (make test-containers)"
    )
    for item in items:
        if "containers" in item.keywords:
            item.add_marker(skip)


def docker_problem() -> str | None:
    """Why Docker with Compose cannot run here, or None."""
    if shutil.which(COMPOSE[0]) is None:
        return f"{COMPOSE[0]} is not on PATH"
    for cmd in (["docker", "info"], [*COMPOSE, "version"]):
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{' '.join(cmd)}: {exc}"
        if done.returncode != 0:
            return f"{' '.join(cmd)} failed: {done.stderr.strip()[-500:]}"
    return None


@dataclass
class Stack:
    """The running compose project and the senders registered in it."""

    env: dict[str, str]
    files_dir: Path
    url: str = URL
    timings: dict[str, float] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)  # role in the tests -> secret
    names: dict[str, str] = field(default_factory=dict)  # role in the tests -> client name

    def compose(
        self, *args: str, timeout: float = 600, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run `docker compose ARGS` in the repository root for this project."""
        done = subprocess.run(
            [*COMPOSE, *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(COMPOSE)} {' '.join(args)} -> {done.returncode}\n{done.stderr[-4000:]}"
            )
        return done

    def containers(self, service: str) -> list[str]:
        """The container ids of one service (`docker compose ps -q SERVICE`)."""
        return self.compose("ps", "-q", service).stdout.split()

    def api_index(self) -> list[str]:
        """Compose v2's exec takes any running api container; 1.29's takes number 1, which
        `make rollout` replaces by higher numbers: then the lowest running one is named."""
        if COMPOSE[0] != "docker-compose":
            return []
        ids = self.containers("api")
        numbers = subprocess.run(
            [
                "docker",
                "inspect",
                "-f",
                '{{index .Config.Labels "com.docker.compose.container-number"}}',
                *ids,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        return ["--index", str(min(int(n) for n in numbers))]

    def add_client(self, who: str, *args: str) -> str:
        """`docker compose exec -T api hub clients add NAME ...`: the secret is the last line.
        NAME is `who` and a suffix of this run (a reused stack has the earlier runs' clients)."""
        name = f"{who}-{RUN}"
        done = self.compose("exec", "-T", *self.api_index(), "api", "hub", "clients", "add", name, *args)
        secret = done.stdout.strip().splitlines()[-1]
        self.secrets[who], self.names[who] = secret, name
        return secret

    def senders(self) -> Stack:
        """The organiser's system `county` and the provider `provider`, added once per stack."""
        if "provider" not in self.secrets:
            from tests.messages import ORGANISER, PROVIDER

            self.add_client("county", "--role", "system", "--organiser", ORGANISER)
            self.add_client("provider", "--role", "provider", "--provider", PROVIDER)
        return self

    def client(self, who: str | None, timeout: float = 30) -> httpx.Client:
        """An HTTP client through lb, authenticated as the named sender."""
        headers = {"Authorization": f"Bearer {self.secrets[who]}"} if who else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def logs(self) -> str:
        """The last lines of every service's log (for failure messages)."""
        return self.compose("logs", "--no-color", "--tail", "40", check=False).stdout[-12000:]


def wait_ready(url: str = URL, timeout: float = 240) -> float:
    """Seconds until /health/ready answers 200 through lb."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if httpx.get(f"{url}/health/ready", timeout=3).status_code == 200:
                return time.monotonic() - start
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url}/health/ready did not answer 200 within {timeout}s")


STARTED: list[Stack] = []  # the stacks this run started, in order


@contextmanager
def started_stack(
    project: str, port: int, files_dir: Path, compose_files: str | None = None
) -> Iterator[Stack]:
    """A compose project from nothing: `down -v`, `up -d --build`, ready through its lb on
    127.0.0.1:`port`; `down -v` after (unless HUB_KEEP_STACK=1). `compose_files` is COMPOSE_FILE
    (colon-separated), for the cluster layout."""
    problem = docker_problem()
    if problem is not None:
        message = f"DOCKER CANNOT RUN the container tests: {problem}. Set it up with docker/install-docker.sh"
        if MAY_SKIP:
            pytest.skip(message + " (skipped: HUB_SKIP_CONTAINERS=1)")
        pytest.fail(message + " (or set HUB_SKIP_CONTAINERS=1 to skip)", pytrace=False)
    env = {
        **os.environ,
        "COMPOSE_PROJECT_NAME": project,
        "HUB_PORT": str(port),
        "HUB_FILES_DIR": str(files_dir),
    }
    if compose_files:
        env["COMPOSE_FILE"] = compose_files
    url = f"http://127.0.0.1:{port}"
    if os.environ.get("HUB_REUSE_STACK") == "1":
        env["HUB_FILES_DIR"] = os.environ.get("HUB_FILES_DIR", str(ROOT / "data" / "files"))
        yield Stack(env=env, files_dir=Path(env["HUB_FILES_DIR"]), url=url)
        return
    running = Stack(env=env, files_dir=files_dir, url=url)
    running.compose("down", "-v", "--remove-orphans", timeout=300)
    start = time.monotonic()
    running.compose("up", "-d", "--build", timeout=1200)
    running.timings["up returned"] = time.monotonic() - start
    try:
        wait_ready(url)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{running.logs()}") from None
    running.timings["up to ready"] = time.monotonic() - start
    print(
        f"\ncontainer stack {project} ready on {url}: "
        + ", ".join(f"{k} {v:.1f}s" for k, v in running.timings.items())
    )
    STARTED.append(running)
    try:
        yield running
    finally:
        STARTED.remove(running)
        if os.environ.get("HUB_KEEP_STACK") != "1":
            running.compose("down", "-v", "--remove-orphans", timeout=300, check=False)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The single-host stack of docker-compose.yml, shared by the whole run."""
    with started_stack(PROJECT, PORT, tmp_path_factory.mktemp("files-drop")) as running:
        yield running
