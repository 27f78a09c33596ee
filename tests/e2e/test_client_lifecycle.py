"""Client secrets over their life (issue 13), across two `hub api` processes on one database:
`hub clients list` shows every client and never a secret; `hub clients revoke NAME` is refused by
both processes at once, however often they served the secret before (nothing caches it);
`hub clients rotate NAME` gives a new secret while the old one works on both for the grace
period, then on neither; an expired secret is a 401 saying so (SOAP: a fault saying so), and one
close to its expiry is a WARNING in the log and a series in /metrics."""

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
from prometheus_client.parser import text_string_to_metric_families

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


API_LOGS: list[Path] = []


@pytest.fixture(scope="module")
def two_apis(hub: Hub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Two API processes besides the session's hub, on its database and broker (their logs in
    API_LOGS)."""
    env = {**os.environ, **{k: v for k, v in hub.env.items() if k.startswith("HUB_")}}
    folder = tmp_path_factory.mktemp("apis")
    API_LOGS[:] = [folder / f"api-{i}.log" for i in (1, 2)]
    started = [start_api(env, log) for log in API_LOGS]
    yield [url for _, url in started]
    for process, _ in started:
        process.terminate()
    for process, _ in started:
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()


def refusal(url: str, secret: str) -> str:
    """The 401 problem's detail for this secret (the answer must be a 401)."""
    answer = httpx.get(
        f"{url}/api/v1/messages/{uuid.uuid4()}", headers={"Authorization": f"Bearer {secret}"}, timeout=10
    )
    assert answer.status_code == 401, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    return str(answer.json()["detail"])


STATUS_CALL = (
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"'
    ' xmlns:t="urn:psop-hub:soap:v1"><soap:Body><t:GetMessageStatus>'
    "<t:HubId>00000000-0000-4000-8000-000000000000</t:HubId></t:GetMessageStatus></soap:Body></soap:Envelope>"
)


def soap_status(url: str, name: str, secret: str) -> str:
    """GetMessageStatus of an unknown message with HTTP Basic: the fault text says whether the
    credentials were taken ("no message") or why not."""
    answer = httpx.post(
        f"{url}/soap/v1",
        content=STATUS_CALL,
        headers={"Content-Type": "text/xml; charset=utf-8"},
        auth=(name, secret),
        timeout=10,
    )
    return answer.text


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
    soap_basic = soap_status(two_apis[1], name, secret)
    assert "authentication failed" in soap_basic, soap_basic


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


def rows_of(listing: str) -> dict[str, dict[str, str]]:
    """`hub clients list` as {name: {column: value}} (dates are two words: day and time)."""
    rows = {}
    for line in listing.strip().splitlines()[1:]:
        words = line.split()
        dates = words[4:]
        values, i = [], 0
        while i < len(dates):
            if dates[i] == "-":
                values.append("-")
                i += 1
            else:
                values.append(f"{dates[i]} {dates[i + 1]}")
                i += 2
        rows[words[0]] = dict(zip(("created", "expires", "old_until", "revoked"), values, strict=True))
    return rows


# Wide enough that a loaded CI machine (a CLI process start, six HTTP and two SOAP calls) does
# all of the checks inside them; each test measures from before the command, so a check inside
# the window is guaranteed to be inside, and says so if the machine was too slow for it.
ROTATION_GRACE_S = 20
LIFETIME_S = 15


def test_rotation_keeps_the_old_secret_for_the_grace_period_on_every_process(
    hub: Hub, two_apis: list[str]
) -> None:
    name = uid("rotated")
    old = hub.add_client(name, "--role", "system", "--organiser", ORGANISER)
    everywhere = [*two_apis, hub.url]
    assert all(authenticated(url, old) for url in everywhere)
    before = time.monotonic()  # the grace period starts after this
    out = hub_cli(hub.env, "clients", "rotate", name, "--grace", f"{ROTATION_GRACE_S}s")
    rotated = time.monotonic()  # ... and before this
    new = out.strip().splitlines()[-1]
    assert new != old and len(new) == 43  # 32 random bytes, URL-safe base64
    assert "keeps working until" in out and old not in out

    # During the grace period both work, on every process, by bearer and by SOAP.
    for url in everywhere:
        assert authenticated(url, old) and authenticated(url, new)
    for secret in (old, new):
        assert "no message" in soap_status(two_apis[1], name, secret)
    row = rows_of(hub_cli(hub.env, "clients", "list"))[name]
    assert row["old_until"] != "-" and row["expires"] > row["old_until"]
    assert time.monotonic() - before < ROTATION_GRACE_S, "too slow to check the grace period"

    # After it only the new one: the old one is refused, saying it expired.
    time.sleep(max(0.0, ROTATION_GRACE_S + 0.5 - (time.monotonic() - rotated)))
    for url in everywhere:
        assert "expired" in refusal(url, old)
        assert authenticated(url, new)
    assert "the secret has expired" in soap_status(two_apis[0], name, old)
    assert "no message" in soap_status(two_apis[0], name, new)
    assert rows_of(hub_cli(hub.env, "clients", "list"))[name]["old_until"] == "-"


def test_a_rotation_without_grace_refuses_the_old_secret_at_once(hub: Hub, two_apis: list[str]) -> None:
    name = uid("leaked")
    old = hub.add_client(name, "--role", "provider", "--provider", OTHER_PROVIDER)
    assert all(authenticated(url, old) for url in two_apis)
    new = hub_cli(hub.env, "clients", "rotate", name, "--grace", "0").strip().splitlines()[-1]
    assert not any(authenticated(url, old) for url in two_apis)
    assert all(authenticated(url, new) for url in two_apis)


def test_rotating_an_unknown_or_revoked_client_says_so(hub: Hub) -> None:
    revoked = uid("gone")
    hub.add_client(revoked, "--role", "system", "--organiser", ORGANISER)
    hub_cli(hub.env, "clients", "revoke", revoked)
    for name, says in ((uid("nobody"), "no client named"), (revoked, "is revoked")):
        done = subprocess.run(
            [sys.executable, "-m", "psop_hub.cli", "clients", "rotate", name],
            env=hub.env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        assert done.returncode != 0 and says in done.stderr, done.stderr


def test_an_expired_secret_is_refused_saying_so_and_an_unknown_one_is_not(
    hub: Hub, two_apis: list[str]
) -> None:
    name = uid("expiring")
    short = {**hub.env, "HUB_SECRET_LIFETIME": f"{LIFETIME_S}s"}
    before = time.monotonic()  # the lifetime starts after this
    secret = hub_cli(short, "clients", "add", name, "--role", "system", "--organiser", ORGANISER)
    secret = secret.strip().splitlines()[-1]
    added = time.monotonic()  # ... and before this
    assert all(authenticated(url, secret) for url in two_apis)
    assert time.monotonic() - before < LIFETIME_S, "too slow to check the secret before it expired"
    time.sleep(max(0.0, LIFETIME_S + 0.5 - (time.monotonic() - added)))
    for url in two_apis:
        assert refusal(url, secret) == "the secret has expired: ask the hub's operator for a new one"
        # A secret nobody holds is refused as before: nothing says which secrets exist.
        unknown = refusal(url, "x" * 43)
        assert "expired" not in unknown and name not in unknown
    fault = soap_status(two_apis[1], name, secret)
    assert "the secret has expired" in fault and "soap:Client" in fault
    # The right secret under another client's name tells nothing either.
    assert "expired" not in soap_status(two_apis[1], "county", secret)
    done = subprocess.run(
        [sys.executable, "-m", "psop_hub.cli", "clients", "list"],
        env=hub.env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert f"{name}: its secret has expired" in done.stderr
    # A rotation gives the client a working secret again.
    fresh = hub_cli(hub.env, "clients", "rotate", name).strip().splitlines()[-1]
    assert all(authenticated(url, fresh) for url in two_apis)


def test_a_secret_close_to_its_expiry_is_a_warning_in_the_log_and_the_metrics(
    hub: Hub, two_apis: list[str]
) -> None:
    name = uid("soon")
    soon = {**hub.env, "HUB_SECRET_LIFETIME": "10d"}
    secret = hub_cli(soon, "clients", "add", name, "--role", "system", "--organiser", ORGANISER)
    secret = secret.strip().splitlines()[-1]
    assert authenticated(two_apis[0], secret)
    deadline = time.monotonic() + 10
    while f"client {name}'s secret expires at" not in API_LOGS[0].read_text(errors="replace"):
        assert time.monotonic() < deadline, API_LOGS[0].read_text(errors="replace")[-3000:]
        time.sleep(0.2)
    line = next(ln for ln in API_LOGS[0].read_text().splitlines() if f"client {name}'s secret" in ln)
    assert "WARNING" in line and f"hub clients rotate {name}" in line and secret not in line
    assert authenticated(two_apis[0], secret)  # once an hour per secret, not on every request
    assert API_LOGS[0].read_text().count(f"client {name}'s secret expires") == 1

    with hub.client("admin") as admin:
        scraped = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(admin.get("/metrics").text)
            for s in f.samples
        }
    left = scraped[("hub_client_secret_expires_in_seconds", (("client", name),))]
    assert 9 * 86400 < left <= 10 * 86400
    assert scraped[("hub_client_secrets_expiring", ())] >= 1
    assert scraped[("hub_client_secret_expires_in_seconds", (("client", "county"),))] > 300 * 86400
    done = subprocess.run(
        [sys.executable, "-m", "psop_hub.cli", "clients", "list"],
        env=hub.env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert (
        f"{name}: its secret expires in 9.9 days" in done.stderr
        or f"{name}: its secret expires in 10.0 days" in done.stderr
    )
    assert rows_of(done.stdout)[name]["expires"] != "-"
