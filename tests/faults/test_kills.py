"""Hub processes SIGKILLed while twelve senders keep sending: a worker in the middle of applying,
the API in the middle of intake. `hub run`'s supervisor starts each again by itself; every
message the senders were told was accepted is applied exactly once."""

from __future__ import annotations

import signal
import time

from tests.e2e.conftest import Hub, ready_vouchers
from tests.faults.conftest import Window, applied_exactly_once, hub_component, under_load, wait_ready
from tests.load import Load


def test_worker_sigkill_under_load(faults_hub: Hub) -> None:
    numbers = ready_vouchers(faults_hub, 10, "WK")
    killed: list[int] = []

    def kill_a_worker(load: Load, window: Window) -> None:
        victim = faults_hub.workers()[0]
        window.began = time.time()
        victim.send_signal(signal.SIGKILL)
        killed.append(victim.pid)
        victim.wait(10)
        deadline = time.monotonic() + 30
        while len(faults_hub.workers()) < 2:  # the supervisor starts another
            assert time.monotonic() < deadline, faults_hub.log.read_text()[-3000:]
            time.sleep(0.2)
        window.ended = time.time()

    load = under_load(faults_hub, numbers, kill_a_worker)
    # A worker's death never reaches a sender: every request was answered 202 at once.
    assert load.retries == {}, load.retries
    assert {a.outcome for a in load.attempts} == {"202"}
    applied_exactly_once(faults_hub, load)
    assert killed[0] not in [w.pid for w in faults_hub.workers()]
    assert f"worker-1 exited with -{signal.SIGKILL.value}" in faults_hub.log.read_text() or (
        f"worker-2 exited with -{signal.SIGKILL.value}" in faults_hub.log.read_text()
    )
    wait_ready(faults_hub)


def test_api_sigkill_in_the_middle_of_intake(faults_hub: Hub) -> None:
    numbers = ready_vouchers(faults_hub, 10, "AK")

    def kill_the_api(load: Load, window: Window) -> None:
        api = hub_component(faults_hub, "api")
        deadline = time.monotonic() + 10
        while load.in_flight < 3 and time.monotonic() < deadline:
            time.sleep(0.001)  # kill it with requests in its hands
        window.began = time.time()
        api.send_signal(signal.SIGKILL)
        api.wait(10)
        wait_ready(faults_hub)  # `hub run` starts the API again by itself
        window.ended = time.time()

    load = under_load(faults_hub, numbers, kill_the_api)
    broken = {why: n for why, n in load.retries.items() if not why.isdigit()}
    assert broken, f"no request was in flight when the API died: {load.retries}"
    # What the killed API had stored but not yet answered was answered 200 (a duplicate) on the
    # sender's retry: one message, not two.
    retried = {a.message_id for a in load.attempts if not a.outcome.isdigit()}
    answered = {a.message_id: a.outcome for a in load.attempts if a.outcome in ("200", "202")}
    print(
        f"{len(retried)} requests cut off by the kill; on their retry "
        f"{sum(1 for m in retried if answered.get(m) == '200')} were already stored (200), "
        f"{sum(1 for m in retried if answered.get(m) == '202')} were not (202)"
    )
    assert "api exited with -9" in faults_hub.log.read_text()
    applied_exactly_once(faults_hub, load)
