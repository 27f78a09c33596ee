"""HUB_RATE_LIMIT_PER_MINUTE across two `hub api` processes on one database (issue 13): one
sender's requests are counted together, whichever process takes them; over the limit REST
answers 429 problem+json with Retry-After, SOAP a Client fault."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from tests.e2e.conftest import Hub
from tests.e2e.test_client_lifecycle import start_api
from tests.messages import ORGANISER, uid

LIMIT = 10


@pytest.fixture(scope="module")
def limited_apis(hub: Hub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    env = {**os.environ, **{k: v for k, v in hub.env.items() if k.startswith("HUB_")}}
    env["HUB_RATE_LIMIT_PER_MINUTE"] = str(LIMIT)
    folder = tmp_path_factory.mktemp("limited")
    started = [start_api(env, folder / f"api-{i}.log") for i in (1, 2)]
    yield [url for _, url in started]
    for process, _ in started:
        process.terminate()
    for process, _ in started:
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()


def not_near_a_minutes_end() -> None:
    """The windows are calendar minutes: start a count with time to spare before the next one."""
    second = datetime.now(UTC).second
    if second > 45:
        time.sleep(61 - second)


def test_one_senders_requests_are_counted_over_both_processes(hub: Hub, limited_apis: list[str]) -> None:
    name = uid("limited")
    secret = hub.add_client(name, "--role", "system", "--organiser", ORGANISER)
    not_near_a_minutes_end()
    answers = [
        httpx.get(
            f"{limited_apis[i % 2]}/api/v1/messages/{uuid.uuid4()}",
            headers={"Authorization": f"Bearer {secret}"},
            timeout=10,
        )
        for i in range(LIMIT + 4)  # alternating between the two processes
    ]
    statuses = [a.status_code for a in answers]
    last = answers[-1]
    assert statuses == [404] * LIMIT + [429] * 4, statuses
    assert last.headers["content-type"] == "application/problem+json"
    assert 1 <= int(last.headers["retry-after"]) <= 60
    assert f"{LIMIT} requests per minute" in last.json()["detail"]
    # Another sender is not held back by this one.
    other = httpx.get(
        f"{limited_apis[0]}/api/v1/messages/{uuid.uuid4()}",
        headers={"Authorization": f"Bearer {hub.secrets['other-county']}"},
        timeout=10,
    )
    assert other.status_code == 404


def test_over_the_limit_soap_answers_a_client_fault_with_retry_after(
    hub: Hub, limited_apis: list[str]
) -> None:
    name = uid("limited")
    secret = hub.add_client(name, "--role", "system", "--organiser", ORGANISER)
    not_near_a_minutes_end()
    for i in range(LIMIT):
        ok = httpx.get(
            f"{limited_apis[i % 2]}/api/v1/messages/{uuid.uuid4()}",
            headers={"Authorization": f"Bearer {secret}"},
            timeout=10,
        )
        assert ok.status_code == 404
    envelope = (
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"'
        ' xmlns:t="urn:psop-hub:soap:v1">'
        "<soap:Body><t:GetMessageStatus><t:HubId>00000000-0000-4000-8000-000000000000</t:HubId>"
        "</t:GetMessageStatus></soap:Body></soap:Envelope>"
    )
    answer = httpx.post(
        f"{limited_apis[1]}/soap/v1",
        content=envelope,
        headers={"Content-Type": "text/xml; charset=utf-8"},
        auth=(name, secret),
        timeout=10,
    )
    assert answer.status_code == 500
    assert "<faultcode>soap:Client</faultcode>" in answer.text
    assert "requests per minute" in answer.text
    assert 1 <= int(answer.headers["retry-after"]) <= 60
