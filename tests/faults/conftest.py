"""Fault tests' fixtures: a PostgreSQL cluster and a RabbitMQ node of this test session's own.

Stopping and restarting them disturbs nobody else on the machine (neither the other tests, whose
database and vhost live on the host's services, nor people benchmarking there). Both are started
once per session (PostgreSQL: initdb and start about 1.5 s; RabbitMQ: about 8 s to boot) and
removed afterwards; every test starts a `hub run` of its own on them (a few seconds) with a log of
its own. Ports are taken below the kernel's ephemeral range: a port there can be held for a moment
by any outgoing connection on the machine, and RabbitMQ restarted on such a port fails with
eaddrinuse (seen here).
"""

from __future__ import annotations

import glob
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pika
import psutil
import psycopg
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import Engine

from psop_hub.hub.tables import deliveries, inbox, journey, messages, vouchers
from tests.conftest import hub_environment
from tests.e2e.conftest import Hub, start_hub
from tests.load import PLAIN_503, Load
from tests.messages import ORGANISER, PROVIDER

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")  # the scripts themselves: /usr/sbin's wrappers su to rabbitmq
TIMINGS: dict[str, float] = {}
SECRETS: dict[str, str] = {}  # the senders of the session's database, by name


def quiet_port() -> int:
    """A free TCP port on 127.0.0.1 below the ephemeral range (see the module's note)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    busy = {c.laddr.port for c in psutil.net_connections("tcp") if c.laddr}
    for _ in range(200):
        port = random.randrange(20000, low - 1)
        if port in busy or port + 1 in busy:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port below the ephemeral range")


def _timed(what: str, started: float) -> None:
    TIMINGS[what] = TIMINGS.get(what, 0.0) + time.monotonic() - started


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        spent = ", ".join(f"{what} {seconds:.1f}s" for what, seconds in TIMINGS.items())
        terminalreporter.write_line(f"tests/faults private services: {spent}")


# --- PostgreSQL ----------------------------------------------------------------------------------


@dataclass
class PrivatePostgres:
    """A cluster of our own: initdb into `root/data`, listening on 127.0.0.1:`port`, trust auth,
    superuser `root`. As root it runs as the `postgres` OS user (PostgreSQL refuses root)."""

    root: Path
    port: int
    bindir: Path

    def _run(self, *argv: str, timeout: float = 120) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run(
            [*prefix, str(self.bindir / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            log = self.root / "postgres.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}\n{tail}")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.root / "data"), "-U", "root", "--auth=trust", "-E", "UTF8", "-N")

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=300 "
            "-c shared_buffers=64MB"
        )
        data, log = str(self.root / "data"), str(self.root / "postgres.log")
        self._run("pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop: `fast` (sessions ended, a clean shutdown) or `immediate` (a crash, recovery at start)."""
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", mode, "-w", "-t", "60", "stop")

    def url(self, database: str) -> str:
        return f"postgresql://root@127.0.0.1:{self.port}/{database}"


@pytest.fixture(scope="session")
def private_pg() -> Iterator[PrivatePostgres]:
    """This session's own PostgreSQL cluster (removed afterwards)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin: tests/faults needs them")
    root = Path(tempfile.mkdtemp(prefix="psop-faults-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    cluster = PrivatePostgres(root, quiet_port(), Path(found[-1]).parent)
    started = time.monotonic()
    cluster.init()
    cluster.start()
    _timed("PostgreSQL initdb+start", started)
    try:
        yield cluster
    finally:
        try:
            cluster.stop("immediate")
        except RuntimeError:
            pass  # already stopped by a failed test
        shutil.rmtree(root, ignore_errors=True)


# --- RabbitMQ ------------------------------------------------------------------------------------


@dataclass
class PrivateRabbit:
    """A RabbitMQ node of our own: its own name, ports, Mnesia and log directories, Erlang cookie
    (HOME), an empty rabbitmq-env.conf and rabbitmq.conf (the host's name a node and a port) and
    no plugins. Started in a session of its own; `stop` stops the whole node (rabbitmqctl stop)."""

    root: Path
    port: int
    dist_port: int
    node: str
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        (self.root / "rabbitmq-env.conf").write_text("")
        (self.root / "rabbitmq.conf").write_text("log.file.level = warning\n")
        (self.root / "enabled_plugins").write_text("[].\n")
        self.env = {
            **os.environ,
            "HOME": str(self.root),
            "RABBITMQ_CONF_ENV_FILE": str(self.root / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_PID_FILE": str(self.root / "rabbit.pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def ctl(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            [str(RABBIT_BIN / "rabbitmqctl"), "-q", "-n", self.node, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stderr.strip()}\n{self.output()}")
        return done.stdout

    def output(self) -> str:
        out = self.root / "server.out"
        return out.read_text(errors="replace")[-3000:] if out.exists() else ""

    def start(self) -> None:
        """Start the node and wait until RabbitMQ runs on it (its pid file, then the application)."""
        (self.root / "rabbit.pid").unlink(missing_ok=True)
        with (self.root / "server.out").open("ab") as out:
            self.process = subprocess.Popen(
                [str(RABBIT_BIN / "rabbitmq-server")],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.root,
            )
        self.ctl("wait", "--timeout", "120", str(self.root / "rabbit.pid"), timeout=150)

    def stop(self) -> None:
        """Stop the node (`rabbitmqctl stop PIDFILE` returns once the OS process is gone)."""
        self.ctl("stop", str(self.root / "rabbit.pid"))
        if self.process is not None:
            self.process.wait(timeout=60)
            self.process = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"


@pytest.fixture(scope="session")
def private_rabbit(run_id: str) -> Iterator[PrivateRabbit]:
    """This session's own RabbitMQ node (removed afterwards)."""
    if not (RABBIT_BIN / "rabbitmq-server").exists():
        pytest.fail(f"no {RABBIT_BIN}/rabbitmq-server: tests/faults starts a RabbitMQ node of its own")
    root = Path(tempfile.mkdtemp(prefix="psop-faults-rabbit-"))
    port = quiet_port()
    dist = quiet_port()
    node = PrivateRabbit(root, port, dist, f"psopfaults{run_id}@localhost")
    started = time.monotonic()
    node.start()
    _timed("RabbitMQ start", started)
    pika.BlockingConnection(pika.URLParameters(node.url)).close()
    try:
        yield node
    finally:
        if node.process is not None:
            try:
                node.stop()
            except (RuntimeError, subprocess.TimeoutExpired):
                node.process.kill()
        shutil.rmtree(root, ignore_errors=True)


# --- the hub on them -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def faults_env(
    private_pg: PrivatePostgres, private_rabbit: PrivateRabbit, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """The HUB_* environment of the fault tests' hubs: the private database and node."""
    with psycopg.connect(private_pg.url("postgres"), autocommit=True) as conn:
        conn.execute("CREATE DATABASE psop_faults")
    env = hub_environment(
        private_pg.url("psop_faults"), private_rabbit.url, str(tmp_path_factory.mktemp("faultsdata"))
    )
    # The scheduler has nothing to do here; its pool would only add connections to count.
    return {**env, "HUB_SCHEDULER_ENABLED": "false"}


@pytest.fixture
def faults_hub(faults_env: dict[str, str], tmp_path: Path) -> Iterator[Hub]:
    """A `hub run` of this test's own on the private services, with a county system and a provider.
    At the end it must still be ready and stop cleanly: the hub recovered by itself."""
    started = time.monotonic()
    running = start_hub(faults_env, tmp_path / "hub.log")
    if not SECRETS:  # the first hub on the session's database registers the senders
        running.add_client("county", "--role", "system", "--organiser", ORGANISER)
        running.add_client("provider", "--role", "provider", "--provider", PROVIDER)
        SECRETS.update(running.secrets)
    running.secrets.update(SECRETS)
    _timed("hub start", started)
    yield running
    code = running.stop()
    assert code == 0, running.log.read_text()[-3000:]


def store_engine(hub: Hub) -> Engine:
    """An engine on the hub's database, for reading its state."""
    return create_engine(hub.env["HUB_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://"))


def wait_ready(hub: Hub, timeout: float = 120) -> None:
    """Wait until the hub answers ready again and runs its API and two workers (on its own)."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{hub.url}/health/ready", timeout=5).status_code == 200 and len(hub.workers()) >= 2:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"the hub did not recover:\n{hub.log.read_text()[-3000:]}"
        time.sleep(0.5)


def hub_component(hub: Hub, name: str) -> psutil.Process:
    """The live `hub NAME` child of the hub's supervisor (api, worker, files, scheduler)."""
    for child in psutil.Process(hub.process.pid).children():
        if child.is_running() and child.cmdline()[-1:] == [name]:
            return child
    raise AssertionError(f"no live {name} process under the supervisor")


def applied_exactly_once(hub: Hub, load: Load, timeout: float = 180) -> None:
    """Every message the load got 200/202 for is applied exactly once (`each_applied_once`)."""
    each_applied_once(hub, "provider", load.accepted, load.voucher_of, load.expected_use(), timeout)


def each_applied_once(
    hub: Hub,
    sender: str,
    accepted: dict[str, str],
    voucher_of: dict[str, str],
    want: dict[str, Decimal],
    timeout: float = 180,
) -> None:
    """Each accepted message (message_id -> the hub_id the sender was given) is stored once under
    that hub_id, is applied, has one 'applied' journey step and one inbox row; each voucher's
    quantity_used and deliveries are exactly what was acknowledged for it; and nothing else was
    stored for these vouchers (no message the sender was not told about). Read from the state."""
    engine = store_engine(hub)
    numbers = list(want)
    ids = list(accepted)
    assert ids, "the load got nothing accepted"
    ours = select(messages.c.hub_id).where(
        messages.c.type == "delivery.reported",
        messages.c.organiser == ORGANISER,
        messages.c.reference.in_(numbers),
    )
    try:
        with engine.connect() as conn:
            deadline = time.monotonic() + timeout
            while True:
                statuses = dict(
                    conn.execute(
                        select(messages.c.status, func.count())
                        .where(messages.c.hub_id.in_(ours))
                        .group_by(messages.c.status)
                    ).all()
                )
                if statuses == {"applied": len(ids)} or time.monotonic() > deadline:
                    break
                conn.rollback()
                time.sleep(0.5)
            assert statuses == {"applied": len(ids)}, (statuses, len(ids))
            stored = dict(
                conn.execute(
                    select(messages.c.message_id, messages.c.hub_id).where(
                        messages.c.sender == sender, messages.c.message_id.in_(ids)
                    )
                ).all()
            )
            assert {m: str(h) for m, h in stored.items()} == accepted
            for table, where in (
                (journey, journey.c.step == "applied"),
                (inbox, inbox.c.outcome.isnot(None)),
            ):
                per_message = dict(
                    conn.execute(
                        select(table.c.hub_id, func.count())
                        .where(table.c.hub_id.in_(ours), where)
                        .group_by(table.c.hub_id)
                    ).all()
                )
                assert len(per_message) == len(ids), (table.name, len(per_message), len(ids))
                assert set(per_message.values()) == {1}, f"{table.name}: a message more than once"
            used = dict(
                conn.execute(
                    select(vouchers.c.voucher_number, vouchers.c.quantity_used).where(
                        vouchers.c.organiser == ORGANISER, vouchers.c.voucher_number.in_(numbers)
                    )
                ).all()
            )
            assert used == want
            rows = dict(
                conn.execute(
                    select(deliveries.c.voucher_number, func.count())
                    .where(deliveries.c.organiser == ORGANISER, deliveries.c.voucher_number.in_(numbers))
                    .group_by(deliveries.c.voucher_number)
                ).all()
            )
            counted = {n: sum(1 for m in ids if voucher_of[m] == n) for n in numbers}
            assert {n: rows.get(n, 0) for n in numbers} == counted
    finally:
        engine.dispose()


# --- a fault in the middle of a load -------------------------------------------------------------

SENDERS = 12  # concurrent senders, each at most RATE deliveries per second
RATE = 10.0
QUANTITIES = ("1", "0.25", "0.5", "0.75")
STEADY_S = 3.0  # load before the fault, and after the hub is back


@dataclass
class Window:
    """When a fault began and when the hub had recovered from it (time.time())."""

    began: float = 0.0
    ended: float = 0.0


def under_load(hub: Hub, numbers: list[str], fault: Callable[[Load, Window], None]) -> Load:
    """Run the load, call `fault` after STEADY_S (it sets the window's times), load on STEADY_S
    after it returns, then stop. No request may fail: each got 200/202 in the end, or a 503 with
    problem+json or a transport error on the way there; and messages were accepted both before
    the fault and after it (the load straddled it)."""
    load = Load(hub.secrets["provider"], numbers, hub.url, threads=SENDERS, rate=RATE, quantities=QUANTITIES)
    window = Window()
    load.start()
    try:
        time.sleep(STEADY_S)
        fault(load, window)
        assert window.began and window.ended, "the fault must say when it began and ended"
        time.sleep(STEADY_S)
    finally:
        load.finish()
    print("\n" + load.report(f"fault {window.ended - window.began:.1f}s"))
    print("\n".join(load.seen[:5]))
    assert load.failures == [], load.failures[:10]
    assert PLAIN_503 not in load.retries, "every 503 is problem+json"
    ok = ("200", "202")
    assert [a for a in load.between(0, window.began) if a.outcome in ok], "nothing accepted before the fault"
    assert [a for a in load.between(window.ended, time.time()) if a.outcome in ok], "nothing after it"
    return load
