"""Real faults under a stream of messages: RabbitMQ and PostgreSQL restarted while senders keep
sending. Every message the hub acknowledged (202) is applied exactly once; while PostgreSQL is
down the hub answers 503 and never 202."""

from __future__ import annotations

import subprocess
import threading
import time
from decimal import Decimal
from pathlib import Path

import httpx
from sqlalchemy import create_engine, func, select

from psop_hub.hub.tables import inbox, journey, messages, vouchers
from tests.e2e.conftest import Hub, ready_vouchers
from tests.messages import ORGANISER, delivery


def _stream(
    hub: Hub, numbers: list[str], total: int, fault_at: int, fault: threading.Thread
) -> dict[str, Decimal]:
    """Send `total` deliveries (retrying 503s and transport errors like a partner would);
    start `fault` after `fault_at` of them. Returns what was acknowledged, per voucher."""
    acked: dict[str, Decimal] = {n: Decimal(0) for n in numbers}
    with hub.client("provider") as provider:
        for i in range(total):
            number = numbers[i % len(numbers)]
            raw = delivery(number, "1")
            for _ in range(600):
                try:
                    answer = provider.post("/api/v1/messages", json=raw)
                except httpx.TransportError:
                    time.sleep(0.1)
                    continue
                if answer.status_code in (200, 202):
                    break
                assert answer.status_code == 503, answer.text  # never anything but "try again"
                time.sleep(0.1)
            else:
                raise AssertionError("the hub never took the message back")
            if answer.status_code == 202:
                acked[number] += 1
            if i == fault_at:
                fault.start()
    fault.join()
    return acked


def _assert_applied_exactly_once(hub: Hub, acked: dict[str, Decimal]) -> None:
    engine = create_engine(hub.env["HUB_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://"))
    numbers = list(acked)
    deadline = time.monotonic() + 180
    with engine.connect() as conn:
        while True:
            used = dict(
                conn.execute(
                    select(vouchers.c.voucher_number, vouchers.c.quantity_used).where(
                        vouchers.c.organiser == ORGANISER, vouchers.c.voucher_number.in_(numbers)
                    )
                ).all()
            )
            if used == acked or time.monotonic() > deadline:
                break
            conn.rollback()
            time.sleep(0.5)
        assert used == acked
        ids = select(messages.c.hub_id).where(
            messages.c.type == "delivery.reported", messages.c.reference.in_(numbers)
        )
        statuses = dict(
            conn.execute(
                select(messages.c.status, func.count())
                .where(messages.c.hub_id.in_(ids))
                .group_by(messages.c.status)
            ).all()
        )
        assert statuses == {"applied": int(sum(acked.values()))}
        applied_steps = conn.execute(
            select(func.count()).where(journey.c.hub_id.in_(ids), journey.c.step == "applied")
        ).scalar()
        assert applied_steps == int(sum(acked.values()))
        assert conn.execute(select(func.count()).where(inbox.c.hub_id.in_(ids))).scalar() == applied_steps
    engine.dispose()


def test_rabbitmq_restart_mid_stream(hub: Hub) -> None:
    numbers = ready_vouchers(hub, 5, "F")

    def restart() -> None:
        subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, timeout=120)
        time.sleep(3)  # the senders keep going: the hub stores and answers 202 without the broker
        subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, timeout=120)
        subprocess.run(["rabbitmqctl", "-q", "await_startup"], check=True, timeout=120)

    acked = _stream(hub, numbers, 300, 100, threading.Thread(target=restart))
    _assert_applied_exactly_once(hub, acked)


def test_postgresql_restart_mid_stream(hub: Hub) -> None:
    numbers = ready_vouchers(hub, 5, "F")
    cluster = sorted(p.name for p in Path("/etc/postgresql").iterdir())[0]

    def restart() -> None:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", "restart"],
            check=True,
            timeout=120,
        )

    acked = _stream(hub, numbers, 300, 100, threading.Thread(target=restart))
    _assert_applied_exactly_once(hub, acked)
