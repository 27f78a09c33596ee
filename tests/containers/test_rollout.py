"""`make rollout` (docker/rollout.sh) under a steady load through lb: every hub container replaced,
no failed request, every accepted message applied exactly once."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.containers.conftest import COMPOSE, ROOT, URL, Stack
from tests.containers.test_faults import applied_exactly_once, fault_vouchers
from tests.load import Load

pytestmark = pytest.mark.containers


@pytest.fixture(scope="module")
def loaded(stack: Stack) -> Stack:
    """The organiser's system and the provider."""
    return stack.senders()


def test_rollout_replaces_every_hub_container_under_load(loaded: Stack) -> None:
    services = ("api", "worker", "files", "scheduler")
    before = {s: set(loaded.containers(s)) for s in services}
    load = Load(loaded.secrets["provider"], fault_vouchers(loaded), URL)
    load.start()
    try:
        time.sleep(3)
        done = subprocess.run(
            [str(ROOT / "docker" / "rollout.sh")],
            cwd=ROOT,
            env={**loaded.env, "HUB_ROLLOUT_FORCE": "1", "HUB_COMPOSE": " ".join(COMPOSE)},
            capture_output=True,
            text=True,
            timeout=900,
        )
        time.sleep(3)
    finally:
        load.finish()
    print("\n" + load.report("rollout") + "\n" + done.stderr[-3000:])
    assert done.returncode == 0, done.stderr[-4000:]
    assert load.failures == []
    applied_exactly_once(loaded, load)
    for service in services:
        after = set(loaded.containers(service))
        assert len(after) == (1 if service == "scheduler" else 2), (service, after)
        assert not after & before[service], f"{service}: old containers left: {after & before[service]}"
