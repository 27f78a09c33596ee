"""Quiet, useful logs, read from a real `hub run`: an idle hub keeps its AMQP connections usable
(no ERROR, no traceback, also at Ctrl-C), start-up is one line per component, a failed message is
one WARNING with its hub_id, and the optional access log never holds a HETU."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import httpx
import pytest

from tests.conftest import fresh_database, fresh_vhost, hub_environment
from tests.e2e.conftest import Hub, start_hub, wait_for_status
from tests.messages import HETU, ORGANISER, PROVIDER, delivery, granted, uid

HEARTBEAT_S = 4  # the heartbeat timeout the hub proposes; RabbitMQ closes a silent connection after it
IDLE_S = 3 * HEARTBEAT_S + 1  # longer than two heartbeat intervals
HETU_SPELLINGS = {HETU, HETU.lower(), HETU[:-1] + HETU[-1].lower()}


@pytest.fixture(scope="module")
def quiet_env(run_id: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A database and vhost of these hubs' own: no other hub's connections, scheduler or lines."""
    with fresh_database(f"psop_quiet_{run_id}") as db, fresh_vhost(f"psop_quiet_{run_id}") as amqp:
        yield hub_environment(db, amqp, str(tmp_path_factory.mktemp("quietdata")))


def quiet_hub(env: dict[str, str], tmp_path: Path, **extra: str) -> Hub:
    """A hub with a short heartbeat, logging to a file of this test's own."""
    return start_hub(env, tmp_path / "hub.log", HUB_AMQP_HEARTBEAT_S=str(HEARTBEAT_S), **extra)


def heartbeat_timeouts(amqp_url: str) -> list[int]:
    """The heartbeat timeout RabbitMQ agreed on for each connection to the hub's vhost."""
    vhost = unquote(urlsplit(amqp_url).path.lstrip("/"))
    # list_connections lists every vhost's connections (other hubs may share the broker)
    done = subprocess.run(
        ["rabbitmqctl", "-q", "--no-table-headers", "list_connections", "vhost", "timeout"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = [line.split("\t") for line in done.stdout.splitlines()]
    return [int(row[1]) for row in rows if len(row) == 2 and row[0] == vhost]


def problems(log: str) -> list[str]:
    """Lines at ERROR or CRITICAL, and tracebacks."""
    return [
        line
        for line in log.splitlines()
        if re.search(r" (ERROR|CRITICAL) ", line) or "Traceback" in line or "Caller's stack" in line
    ]


def test_an_idle_hub_logs_no_error_and_stops_without_a_traceback(
    quiet_env: dict[str, str], tmp_path: Path
) -> None:
    own = quiet_hub(quiet_env, tmp_path)
    sender = uid("quiet")
    own.add_client(sender, "--role", "system", "--organiser", ORGANISER)
    provider = uid("quietp")
    own.add_client(provider, "--role", "provider", "--provider", PROVIDER)
    try:
        with own.client(sender) as county, own.client(provider) as care:
            # the first publish opens the API's connections; then they sit idle
            first = county.post("/api/v1/messages", json=granted(uid("Q")))
            wait_for_status(county, first.json()["hub_id"], {"applied"})
            timeouts = heartbeat_timeouts(own.env["HUB_AMQP_URL"])
            assert timeouts and set(timeouts) == {HEARTBEAT_S}, timeouts  # the short heartbeat is in force
            for _ in range(2):
                time.sleep(IDLE_S)
                sent = county.post("/api/v1/messages", json=granted(uid("Q")))
                assert sent.status_code == 202, sent.text
                assert wait_for_status(county, sent.json()["hub_id"], {"applied"})["status"] == "applied"
            # a delivery whose voucher never comes: retried from the workers' threads, then failed
            orphan = care.post("/api/v1/messages", json=delivery(uid("NONE")))
            failed = wait_for_status(care, orphan.json()["hub_id"], {"failed"}, timeout=60)
        time.sleep(IDLE_S)  # idle again: Ctrl-C meets connections unused for a while
    finally:
        code = own.stop(signal.SIGINT)
    log = own.log.read_text(encoding="utf-8", errors="replace")
    assert code == 0, log[-3000:]
    assert problems(log) == [], log[-5000:]
    # and no connection died of idleness: pika had nothing to report, not even as a warning
    lost = [line for line in log.splitlines() if re.search(r" (WARNING|ERROR) pika", line)]
    assert lost == [], lost
    # the failure is one WARNING line with the hub_id
    failures = [line for line in log.splitlines() if f"message {failed['hub_id']} failed" in line]
    assert len(failures) == 1 and " WARNING " in failures[0], failures


def test_start_up_is_one_line_per_component(quiet_env: dict[str, str], tmp_path: Path) -> None:
    own = quiet_hub(quiet_env, tmp_path)
    own.stop(signal.SIGINT)
    log = own.log.read_text(encoding="utf-8", errors="replace")
    lines = log.splitlines()
    head = "\n".join(lines[: next(i for i, line in enumerate(lines) if "stopping: waiting" in line)])
    assert re.search(r"^schema is up to date", head, re.MULTILINE), head
    for noise in ("alembic", "Context impl", "plugin", "Uvicorn running", "Started server process"):
        assert noise not in head, head
    lines = [line for line in head.splitlines() if line.strip()]
    counted = {
        "api": [line for line in lines if "api listening on http://" in line],
        "workers": [line for line in lines if "worker started:" in line],
        "files": [line for line in lines if "file adapter watching" in line],
        "scheduler": [line for line in lines if "scheduler started:" in line],
    }
    assert {name: len(found) for name, found in counted.items()} == {
        "api": 1,
        "workers": 2,
        "files": 1,
        "scheduler": 1,
    }, head
    # the migration line, the supervisor's one summary line and one line per component: nothing else
    assert len(lines) == 2 + 5, head


def test_access_log_names_method_path_status_and_sender_never_a_hetu(
    quiet_env: dict[str, str], tmp_path: Path
) -> None:
    own = quiet_hub(quiet_env, tmp_path, HUB_ACCESS_LOG="true")
    sender = uid("access")
    own.add_client(sender, "--role", "system", "--organiser", ORGANISER)
    try:
        with own.client(sender) as county:
            sent = county.post("/api/v1/messages", json=granted(uid("A")))
            assert sent.status_code == 202
            for spelling in HETU_SPELLINGS:
                county.get("/api/v1/messages", params={"message_id": spelling})
                county.get(f"/api/v1/vouchers/{ORGANISER}/{quote(spelling)}")
                county.get("/api/v1/admin/messages", params={"q": spelling, "status": "failed"})
        assert httpx.get(f"{own.url}/health/live", timeout=10).status_code == 200
        time.sleep(0.5)  # let the API flush its lines
    finally:
        own.stop(signal.SIGINT)
    log = own.log.read_text(encoding="utf-8", errors="replace")
    access = [line for line in log.splitlines() if "psop_hub.access:" in line]
    assert any(
        re.search(rf"INFO psop_hub\.access: POST /api/v1/messages 202 [0-9.]+ ms sender={sender}$", line)
        for line in access
    ), access
    assert any(re.search(r"GET /api/v1/messages\?message_id=\* [0-9]{3} ", line) for line in access), access
    assert any("GET /api/v1/admin/messages?q=*&status=* 403 " in line for line in access), access
    assert any(re.search(r"GET /health/live 200 [0-9.]+ ms sender=-$", line) for line in access), access
    assert any(f"GET /api/v1/vouchers/{ORGANISER}/131052-**** " in line for line in access), access
    leaked = [s for s in {*HETU_SPELLINGS, *(s.upper() for s in HETU_SPELLINGS)} if s in log]
    assert not leaked, leaked


def test_access_log_is_off_by_default(quiet_env: dict[str, str], tmp_path: Path) -> None:
    own = quiet_hub(quiet_env, tmp_path)
    try:
        assert httpx.get(f"{own.url}/health/live", timeout=10).status_code == 200
    finally:
        own.stop(signal.SIGINT)
    assert "psop_hub.access" not in own.log.read_text(encoding="utf-8", errors="replace")
