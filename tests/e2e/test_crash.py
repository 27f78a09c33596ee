"""Fault tests with real processes: a worker SIGKILLed mid-stream loses and duplicates nothing;
Ctrl-C stops the whole tree cleanly."""

from __future__ import annotations

import signal
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import psutil
import pytest
from sqlalchemy import create_engine, func, select

from psop_hub.hub.tables import inbox, journey, messages, vouchers
from tests.e2e.conftest import Hub, start_hub
from tests.messages import ORGANISER, assigned, delivery, granted, uid


def _engine(hub: Hub):  # type: ignore[no-untyped-def]
    return create_engine(hub.env["HUB_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://"))


def test_worker_sigkill_mid_stream_loses_and_duplicates_nothing(hub: Hub) -> None:
    numbers = [uid("KILL") for _ in range(10)]
    with hub.client("county") as county:
        for number in numbers:
            for raw in (granted(number, quantity="10000"), assigned(number)):
                assert county.post("/api/v1/messages", json=raw).status_code == 202
    sent: dict[str, Decimal] = Counter()  # type: ignore[assignment]
    hub_ids: list[str] = []
    victims = hub.workers()
    assert len(victims) >= 2
    killed = victims[0].pid
    with hub.client("provider") as provider:
        for i in range(400):
            number = numbers[i % len(numbers)]
            quantity = Decimal("0.25") * (1 + i % 4)
            answer = provider.post("/api/v1/messages", json=delivery(number, str(quantity)))
            assert answer.status_code == 202, answer.text
            hub_ids.append(answer.json()["hub_id"])
            sent[number] += quantity
            if i == 150:
                psutil.Process(killed).send_signal(signal.SIGKILL)

    engine = _engine(hub)
    deadline = time.monotonic() + 120
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            pending = conn.execute(
                select(func.count()).where(messages.c.hub_id.in_(hub_ids), messages.c.status != "applied")
            ).scalar()
            if pending == 0:
                break
            time.sleep(0.5)
            conn.rollback()
        statuses = dict(
            conn.execute(
                select(messages.c.status, func.count())
                .where(messages.c.hub_id.in_(hub_ids))
                .group_by(messages.c.status)
            ).all()
        )
        assert statuses == {"applied": 400}
        applied_steps = conn.execute(
            select(func.count()).where(journey.c.hub_id.in_(hub_ids), journey.c.step == "applied")
        ).scalar()
        assert applied_steps == 400
        assert conn.execute(select(func.count()).where(inbox.c.hub_id.in_(hub_ids))).scalar() == 400
        for number in numbers:
            used = conn.execute(
                select(vouchers.c.quantity_used).where(
                    vouchers.c.organiser == ORGANISER, vouchers.c.voucher_number == number
                )
            ).scalar()
            assert used == sent[number], number
    engine.dispose()
    # the supervisor replaced the killed worker
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(hub.workers()) < 2:
        time.sleep(0.2)
    assert len(hub.workers()) >= 2
    assert killed not in [w.pid for w in hub.workers()]


def test_ctrl_c_stops_every_component(e2e_env: dict[str, str], tmp_path: Path) -> None:
    own = start_hub(e2e_env, tmp_path / "hub.log", HUB_QUEUE_NAME=uid("stopq"))
    tree = [own.process.pid] + [p.pid for p in psutil.Process(own.process.pid).children(recursive=True)]
    assert len(tree) >= 4  # supervisor, api, two workers
    assert own.stop(signal.SIGINT, timeout=40) == 0
    time.sleep(0.5)
    alive = [pid for pid in tree if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    assert alive == []
    log = own.log.read_text()
    assert "Worker has been shut down" in log
    if "Traceback" in log:
        pytest.fail(log[-3000:])
