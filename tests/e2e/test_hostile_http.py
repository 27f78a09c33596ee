"""Hostile HTTP against `hub run` (issue 13): wrong media types and methods, oversized headers and
bodies, slow and vanishing clients, too many connections, and identifiers spelled to deceive.
Every one gets a 4xx (or, over the connection limit, 503) problem+json, or a closed connection for
a client too slow to send a request at all; never a 500 and never a traceback in the log."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import BinaryIO
from urllib.parse import quote, urlsplit

import httpx
import pytest

from tests.e2e.conftest import Hub, start_hub, wait_for_status
from tests.e2e.test_malformed import PROBLEM, http_exchange, post_raw
from tests.messages import ORGANISER, granted, uid


def connect(hub: Hub, timeout: float = 10) -> socket.socket:
    address = urlsplit(hub.url)
    return socket.create_connection((address.hostname, address.port), timeout=timeout)


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    return read_from(sock.makefile("rb"))


def read_from(stream: BinaryIO) -> tuple[int, dict[str, str], bytes]:
    """One answer from `stream` (one reader for all the answers of a connection)."""
    status_line = stream.readline()
    assert status_line.startswith(b"HTTP/1.1 "), f"no answer: {status_line!r}"
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, stream.read(int(headers.get("content-length", "0")))


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the hub closes this connection (sending nothing more) within `seconds`."""
    sock.settimeout(seconds)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


# --- on the session's hub (default limits) --------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_a_body_that_is_not_declared_json_is_415(hub: Hub, content_type: str | None) -> None:
    headers = {"Authorization": f"Bearer {hub.secrets['county']}"}
    if content_type:
        headers["Content-Type"] = content_type
    answer = httpx.post(
        f"{hub.url}/api/v1/messages", content=json.dumps(granted(uid("V"))), headers=headers, timeout=30
    )
    assert answer.status_code == 415, answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert "application/json" in answer.json()["detail"]


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/vnd.psop+json"])
def test_json_media_types_with_parameters_are_taken(hub: Hub, content_type: str) -> None:
    answer = httpx.post(
        f"{hub.url}/api/v1/messages",
        content=json.dumps(granted(uid("V"))),
        headers={"Authorization": f"Bearer {hub.secrets['county']}", "Content-Type": content_type},
        timeout=30,
    )
    assert answer.status_code == 202, answer.text


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_a_wrong_method_is_405_with_allow(hub: Hub, method: str) -> None:
    with hub.client("county") as county:
        answer = county.request(method, "/api/v1/messages")
    assert answer.status_code == 405
    assert answer.headers["content-type"] == PROBLEM
    assert "POST" in [m.strip() for m in answer.headers["allow"].split(",")]


def test_headers_over_the_limit_are_431_and_a_few_kilobytes_are_fine(hub: Hub) -> None:
    body = json.dumps(granted(uid("V"))).encode()
    fine = post_raw(hub, body).replace(b"Host: x\r\n", b"Host: x\r\nX-Pad: " + b"a" * 20_000 + b"\r\n")
    assert http_exchange(hub, [fine])[0][0] == 202
    with connect(hub) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(100):  # up to 1.6 MB of one header: the hub answers long before
                sock.sendall(b"X-Pad-" + b"b" * 16_000 + b": 1\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, headers, answer = read_answer(sock)
    assert status == 431
    assert headers["content-type"] == PROBLEM
    assert "over the limit" in json.loads(answer)["detail"]
    assert httpx.get(f"{hub.url}/health/live", timeout=10).status_code == 200


def test_a_whole_head_over_the_limit_in_one_write_is_431(hub: Hub) -> None:
    # The head arrives complete in one piece (measured when parsed, not while it comes in).
    body = json.dumps(granted(uid("V"))).encode()
    big = post_raw(hub, body).replace(b"Host: x\r\n", b"Host: x\r\nX-Pad: " + b"a" * 40_000 + b"\r\n")
    status, headers, answer = http_exchange(hub, [big])[0]
    assert status == 431 and headers["content-type"] == PROBLEM, answer
    assert "over the limit of 32768 bytes" in json.loads(answer)["detail"]


def test_pipelined_requests_with_large_bodies_are_not_taken_for_a_large_head(hub: Hub) -> None:
    # Three requests in one write: the bodies before the last head are not head bytes. The
    # first two bodies are 200 KB (over no limit of their own: a 422 is the right answer).
    filler = json.dumps({**granted(uid("V")), "padding": "x" * 200_000}).encode()
    last = json.dumps(granted(uid("V"))).encode()
    with connect(hub, timeout=30) as sock:
        sock.sendall(post_raw(hub, filler) + post_raw(hub, filler) + post_raw(hub, last))
        stream = sock.makefile("rb")
        answers = [read_from(stream) for _ in range(3)]
    assert [a[0] for a in answers] == [422, 422, 202], [a[2][:300] for a in answers]


def test_a_chunked_body_over_the_limit_is_413(hub: Hub) -> None:
    with connect(hub, timeout=30) as sock:
        sock.sendall(
            b"POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer "
            + hub.secrets["county"].encode()
            + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"[" * 65_536
        try:
            for _ in range(40):  # 2.5 MB, over the default 1 MiB
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, headers, answer = read_answer(sock)
    assert status == 413
    assert headers["content-type"] == PROBLEM
    assert json.loads(answer)["status"] == 413


def test_thousands_of_long_unknown_keys_get_a_short_capped_answer(hub: Hub) -> None:
    raw = granted(uid("V"))
    for i in range(2000):
        raw["payload"][f"{i:05d}" + "k" * 300] = "x"
    with hub.client("county") as county:
        answer = county.post("/api/v1/messages", json=raw)
    assert answer.status_code == 422
    problem = answer.json()
    assert len(problem["errors"]) == 100
    assert problem["error_count"] == 2000
    assert all(len(e["field"]) <= len("payload.") + 41 for e in problem["errors"])
    assert len(answer.content) < 20_000


def test_two_spellings_of_one_identifier_are_one_voucher_and_one_message(hub: Hub) -> None:
    composed = uid("V") + "-\u00e9"
    decomposed = composed.replace("\u00e9", "e\u0301")
    raw = granted(decomposed)
    raw["message_id"] = uid("m") + "-e\u0301"
    with hub.client("county") as county:
        first = county.post("/api/v1/messages", json=raw)
        assert first.status_code == 202, first.text
        wait_for_status(county, first.json()["hub_id"], {"applied"})
        raw["message_id"] = raw["message_id"].replace("e\u0301", "\u00e9")
        raw["payload"]["voucher_number"] = composed
        again = county.post("/api/v1/messages", json=raw)
        assert again.status_code == 200, again.text  # the same message: a duplicate
        assert again.json()["hub_id"] == first.json()["hub_id"]
        for spelling in (composed, decomposed):
            voucher = county.get(f"/api/v1/vouchers/{ORGANISER}/{quote(spelling)}")
            assert voucher.status_code == 200, voucher.text


@pytest.mark.parametrize("character", ["\u202e", "\u200b", "\ufeff"], ids=["RLO", "ZWSP", "BOM"])
def test_invisible_characters_in_identifiers_are_refused(hub: Hub, character: str) -> None:
    with hub.client("county") as county:
        answer = county.post("/api/v1/messages", json=granted(uid("V") + character))
    assert answer.status_code == 422
    fields = {e["field"]: e["message"] for e in answer.json()["errors"]}
    assert "invisible formatting characters" in fields["payload.voucher_number"]


# --- on a hub of its own, with short deadlines and a small connection limit -----------------------


@pytest.fixture(scope="module")
def strict_hub(hub: Hub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """A second hub on the session's database (so the same senders), with tight limits."""
    env = {k: v for k, v in hub.env.items() if k.startswith("HUB_") and k != "HUB_HTTP_PORT"}
    strict = start_hub(
        env,
        tmp_path_factory.mktemp("strict") / "hub.log",
        HUB_HEADER_TIMEOUT_S="2",
        HUB_BODY_TIMEOUT_S="2",
        HUB_API_MAX_CONNECTIONS="20",
        HUB_FILES_ENABLED="false",
        HUB_SCHEDULER_ENABLED="false",
    )
    strict.secrets = hub.secrets
    yield strict
    assert strict.stop() == 0, strict.log.read_text()[-3000:]


def test_half_sent_headers_and_silent_connections_are_closed(strict_hub: Hub) -> None:
    with connect(strict_hub) as silent, connect(strict_hub) as slow:
        slow.sendall(b"POST /api/v1/messages HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        for _ in range(3):  # a byte every second does not keep the deadline away
            time.sleep(1)
            try:
                slow.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                break
        assert closed_within(slow, 10)
        assert closed_within(silent, 10)
        assert time.monotonic() - started < 10
    assert httpx.get(f"{strict_hub.url}/health/live", timeout=10).status_code == 200


def test_a_slow_body_is_408(strict_hub: Hub) -> None:
    with connect(strict_hub) as sock:
        sock.sendall(post_raw(strict_hub, b"x" * 1000)[:-990])  # headers and 10 bytes of 1,000
        status, headers, body = read_answer(sock)
    assert status == 408
    assert headers["content-type"] == PROBLEM
    assert "did not arrive within 2 seconds" in json.loads(body)["detail"]


def test_clients_that_vanish_mid_body_leave_no_traceback(strict_hub: Hub) -> None:
    before = strict_hub.log.stat().st_size
    for _ in range(30):
        with connect(strict_hub) as sock:
            sock.sendall(post_raw(strict_hub, b"{" * 5000)[:-4000])
            time.sleep(0.02)
    time.sleep(1)
    assert httpx.get(f"{strict_hub.url}/health/live", timeout=10).status_code == 200
    with strict_hub.log.open("rb") as log:
        log.seek(before)
        written = log.read().decode("utf-8", "replace")
    assert "Traceback" not in written, written[-3000:]
    assert written.count("\n") <= 2, written[-3000:]


def test_soap_clients_that_vanish_mid_body_or_before_the_answer_leave_no_traceback(strict_hub: Hub) -> None:
    before = strict_hub.log.stat().st_size
    body = (
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        + b"<x>131052-308T</x>" * 20_000
        + b"</soap:Body></soap:Envelope>"
    )
    head = (
        f"POST /soap/v1 HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    for cut in [len(body) // 2] * 15 + [len(body)] * 15:  # mid-body, then whole but never read
        with connect(strict_hub) as sock:
            sock.sendall(head + body[:cut])
            time.sleep(0.02)
    time.sleep(1)
    assert httpx.get(f"{strict_hub.url}/health/live", timeout=10).status_code == 200
    with strict_hub.log.open("rb") as log:
        log.seek(before)
        written = log.read().decode("utf-8", "replace")
    assert "Traceback" not in written and "ERROR" not in written, written[-3000:]
    assert written.count("\n") <= 2, written[-3000:]


def test_over_the_connection_limit_a_request_is_503_until_connections_close(strict_hub: Hub) -> None:
    idle = [connect(strict_hub) for _ in range(20)]
    try:
        time.sleep(0.3)
        answer = httpx.get(f"{strict_hub.url}/health/live", timeout=10)
        assert answer.status_code == 503
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if httpx.get(f"{strict_hub.url}/health/live", timeout=10).status_code == 200:
            return
        time.sleep(0.2)
    pytest.fail("the hub stayed over its connection limit after the connections closed")
