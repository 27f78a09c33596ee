"""The broker and the database stopped and started again while twelve senders keep sending: on
this session's own RabbitMQ node and PostgreSQL cluster (tests/faults/conftest.py), never the
host's. Without RabbitMQ the hub keeps accepting (the messages are stored; the relay publishes
them later); without PostgreSQL it answers 503 and never 202. Afterwards it is ready again by
itself and every message acknowledged is applied exactly once."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from tests.e2e.conftest import Hub, ready_vouchers
from tests.faults.conftest import (
    PrivatePostgres,
    PrivateRabbit,
    Window,
    applied_exactly_once,
    under_load,
    wait_ready,
)
from tests.load import Attempt, Load

DOWN_S = 4.0
# Log lines a second while the broker is away, every process of the hub together (it was 1,400:
# pika's lines for every publish tried, one try per message). Without the database each 503 and
# each batch a worker holds back is a line of its own: as many as the requests, not bounded here.
BROKER_AWAY_LINES_PER_S = 40


def readiness(hub: Hub) -> dict[str, object]:
    answer = httpx.get(f"{hub.url}/health/ready", timeout=15)
    return {"status": answer.status_code, **answer.json()["checks"]}


def outage(
    hub: Hub,
    stop: Callable[[], None],
    start: Callable[[], None],
    readiness_down: dict[str, object],
    lines_per_s: float | None = None,
) -> tuple[Load, list[Attempt]]:
    """Under load: `stop` a service, DOWN_S later check the hub's readiness, `start` it again and
    wait until the hub is ready by itself; at most `lines_per_s` log lines a second meanwhile.
    Returns the load and the attempts sent and answered while the service was down."""
    numbers = ready_vouchers(hub, 10, "RS")
    down: list[Attempt] = []
    logged: list[str] = []

    def restart(load: Load, window: Window) -> None:
        window.began = time.time()
        before = len(hub.log.read_bytes().splitlines())
        stop()
        stopped = time.time()
        time.sleep(DOWN_S)
        assert readiness(hub) == readiness_down
        down.extend(load.between(stopped, time.time()))
        start()
        wait_ready(hub)
        window.ended = time.time()
        logged.extend(hub.log.read_text(errors="replace").splitlines()[before:])

    load = under_load(hub, numbers, restart)
    assert down, "no request while the service was down"
    print(f"{len(logged)} log lines during the outage")
    if lines_per_s is not None:  # the hub says that it waits, not each time it tried
        assert len(logged) <= lines_per_s * (load.ended - load.began), "\n".join(logged[:40])
    return load, down


def test_rabbitmq_stop_and_start_under_load(faults_hub: Hub, private_rabbit: PrivateRabbit) -> None:
    down_checks = {"status": 503, "database": "up", "broker": "down"}
    load, down = outage(
        faults_hub, private_rabbit.stop, private_rabbit.start, down_checks, BROKER_AWAY_LINES_PER_S
    )
    # The broker's absence never reaches a sender: the message is stored and answered 202.
    assert {a.outcome for a in down} == {"202"}, sorted({a.outcome for a in down})
    applied_exactly_once(faults_hub, load)


def test_postgresql_stop_and_start_under_load(faults_hub: Hub, private_pg: PrivatePostgres) -> None:
    down_checks = {"status": 503, "database": "down", "broker": "up"}
    load, down = outage(faults_hub, lambda: private_pg.stop("fast"), private_pg.start, down_checks)
    # Sent and answered while the database was down: 503 (problem+json, checked by the load),
    # never 202 and never a dropped connection.
    assert {a.outcome for a in down} == {"503"}, sorted({a.outcome for a in down})
    applied_exactly_once(faults_hub, load)
