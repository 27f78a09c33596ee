"""Ctrl-C stops the whole `hub run` tree cleanly. (A worker SIGKILLed in the middle of a load, and
the other faults, are in tests/faults/.)"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import psutil
import pytest

from tests.e2e.conftest import start_hub
from tests.messages import uid


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
