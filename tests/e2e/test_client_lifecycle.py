"""Client secrets over their life (issue 13), across two `hub api` processes on one database:
`hub clients list` shows every client and never a secret; `hub clients revoke NAME` is refused by
both processes at once, however often they served the secret before (nothing caches it)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ROOT, Hub, free_port, hub_cli
from tests.messages import ORGANISER, OTHER_PROVIDER, uid


def start_api(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "psop_hub.cli", "api"],
        env={**env, "HUB_HTTP_PORT": str(port)},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"hub api exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health/live", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    process.kill()
    pytest.fail(f"hub api did not start:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def two_apis(hub: Hub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Two API processes besides the session's hub, on its database and broker."""
    env = {**os.environ, **{k: v for k, v in hub.env.items() if k.startswith("HUB_")}}
    folder = tmp_path_factory.mktemp("apis")
    started = [start_api(env, folder / f"api-{i}.log") for i in (1, 2)]
    yield [url for _, url in started]
    for process, _ in started:
        process.terminate()
    for process, _ in started:
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()


def authenticated(url: str, secret: str) -> bool:
    """Whether this API takes the secret (a missing message is 404 to its sender, 401 to a stranger)."""
    answer = httpx.get(
        f"{url}/api/v1/messages/{uuid.uuid4()}", headers={"Authorization": f"Bearer {secret}"}, timeout=10
    )
    assert answer.status_code in (401, 404), answer.text
    return answer.status_code == 404


def test_a_revoked_secret_is_refused_by_every_api_process_at_once(hub: Hub, two_apis: list[str]) -> None:
    name = uid("revoked")
    secret = hub.add_client(name, "--role", "system", "--organiser", ORGANISER)
    for _ in range(5):  # served over and over: a cache, if there were one, would now hold it
        assert all(authenticated(url, secret) for url in [*two_apis, hub.url])
    out = hub_cli(hub.env, "clients", "revoke", name)
    assert "revoked" in out
    assert not any(authenticated(url, secret) for url in [*two_apis, hub.url])
    status_call = (
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"'
        ' xmlns:t="urn:psop-hub:soap:v1"><soap:Body><t:GetMessageStatus>'
        "<t:HubId>00000000-0000-4000-8000-000000000000</t:HubId></t:GetMessageStatus></soap:Body></soap:Envelope>"
    )
    soap_basic = httpx.post(
        f"{two_apis[1]}/soap/v1",
        content=status_call,
        headers={"Content-Type": "text/xml; charset=utf-8"},
        auth=(name, secret),
        timeout=10,
    )
    assert "authentication failed" in soap_basic.text, soap_basic.text


def test_other_clients_keep_working_and_revoking_twice_keeps_the_first_date(
    hub: Hub, two_apis: list[str]
) -> None:
    keep, drop = uid("keep"), uid("drop")
    kept = hub.add_client(keep, "--role", "system", "--organiser", ORGANISER)
    hub.add_client(drop, "--role", "system", "--organiser", ORGANISER)
    first = hub_cli(hub.env, "clients", "revoke", drop).strip().splitlines()[-1]
    time.sleep(1.1)
    again = hub_cli(hub.env, "clients", "revoke", drop).strip().splitlines()[-1]
    assert first == again
    assert all(authenticated(url, kept) for url in two_apis)


def test_revoking_an_unknown_client_says_so(hub: Hub) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "psop_hub.cli", "clients", "revoke", uid("nobody")],
        env=hub.env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode != 0
    assert "no client named" in done.stderr


def test_the_list_shows_every_client_and_no_secret(hub: Hub) -> None:
    name = uid("listed")
    secret = hub.add_client(name, "--role", "provider", "--provider", OTHER_PROVIDER)
    hub_cli(hub.env, "clients", "revoke", name)
    out = hub_cli(hub.env, "clients", "list")
    assert secret not in out
    for other in hub.secrets.values():
        assert other not in out
    rows = {line.split()[0]: line.split() for line in out.strip().splitlines()[1:]}
    assert rows["county"][1:3] == ["system", ORGANISER]
    assert rows["county"][-1] == "-"  # not revoked
    assert rows[name][1] == "provider" and rows[name][-1] != "-"
