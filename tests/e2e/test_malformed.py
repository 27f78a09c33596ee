"""Malformed and hostile REST input against `hub run`: always a 4xx problem+json answer on a
connection that stays usable, never a 500 or a dropped connection, and no HETU echoed back."""

from __future__ import annotations

import json
import socket
from urllib.parse import quote, urlsplit

import httpx
import pytest

from tests.e2e.conftest import Hub, wait_for_status
from tests.messages import HETU, ORGANISER, PROVIDER, assigned, delivery, granted, uid

PROBLEM = "application/problem+json"


def http_exchange(
    hub: Hub, requests: list[bytes], timeout: float = 10
) -> list[tuple[int, dict[str, str], bytes]]:
    """Send raw HTTP/1.1 requests one after another on ONE keep-alive connection; every one must
    be answered on it (a dropped connection fails the test)."""
    address = urlsplit(hub.url)
    answers = []
    with socket.create_connection((address.hostname, address.port), timeout=timeout) as sock:
        stream = sock.makefile("rb")
        for request in requests:
            sock.sendall(request)
            status_line = stream.readline()
            assert status_line.startswith(b"HTTP/1.1 "), f"connection dropped: {status_line!r}"
            headers: dict[str, str] = {}
            while (line := stream.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = stream.read(int(headers.get("content-length", "0")))
            answers.append((int(status_line.split()[1]), headers, body))
    return answers


def post_raw(hub: Hub, body: bytes, chunked: bool = False, content_type: str = "application/json") -> bytes:
    head = (
        f"POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {hub.secrets['county']}\r\n"
        f"Content-Type: {content_type}\r\n"
    ).encode()
    if chunked:
        return head + b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


def get_raw(hub: Hub, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {hub.secrets['county']}\r\n\r\n".encode()


def assert_problem(status: int, headers: dict[str, str], body: bytes, expected: int) -> dict[str, object]:
    assert status == expected, body[:500]
    assert headers["content-type"] == PROBLEM
    problem = json.loads(body)
    assert problem["status"] == expected
    return problem  # type: ignore[no-any-return]


HOSTILE = {
    "deep arrays": b"[" * 1000 + b"]" * 1000,
    "deep objects": b'{"a":' * 5000 + b"1" + b"}" * 5000,
    "a 5,000-digit integer": b'{"message_id": "m", "type": "voucher.amended", "version": '
    + b"9" * 5000
    + b"}",
    "a huge exponent": b'{"message_id": "m", "version": 1e999999}',
    "NaN": b'{"message_id": "m", "version": NaN}',
    "invalid UTF-8": b'{"message_id": "\xff\xfe\xfd", "type": "voucher.granted"}',
    "a lone surrogate in UTF-8": b'{"message_id": "\xed\xa0\x80"}',
    "truncated UTF-8": b'{"message_id": "\xc3',
    "UTF-16": '{"message_id": "m"}'.encode("utf-16"),
    "not JSON": b"message_id=m&type=voucher.granted",
    "a key twice": b'{"message_id": "m", "type": "voucher.granted", "message_id": "n"}',
    "an escaped NUL": b'{"message_id": "m\\u0000", "type": "voucher.granted"}',
    "a raw NUL byte": b'{"message_id": "m\x00", "type": "voucher.granted"}',
}


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_body_is_a_400_problem_on_a_connection_that_stays_usable(
    hub: Hub, name: str, chunked: bool
) -> None:
    valid = json.dumps(granted(uid("V"))).encode()
    answers = http_exchange(hub, [post_raw(hub, HOSTILE[name], chunked), post_raw(hub, valid)])
    problem = assert_problem(*answers[0], 400)
    assert problem["errors"] and problem["detail"], problem
    assert answers[1][0] == 202, answers[1]  # the same connection takes the next request


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/vouchers/{ORGANISER}/V%00x",
        f"/api/v1/vouchers/{ORGANISER}%00/V-1",
        f"/api/v1/orders/{ORGANISER}/O%00",
        "/api/v1/settlements/PS-%00",
        f"/api/v1/providers/{ORGANISER}/{PROVIDER}%00",
        f"/api/v1/providers/{ORGANISER}/" + "1" * 300,
        f"/api/v1/vouchers/{ORGANISER}/" + "x" * 300,
    ],
)
def test_a_nul_byte_or_an_impossible_key_in_a_path_is_not_found(hub: Hub, path: str) -> None:
    answers = http_exchange(hub, [get_raw(hub, path), get_raw(hub, "/health/live")])
    assert_problem(*answers[0], 404)
    assert answers[1][0] == 200


def test_the_outside_testers_voucher_is_refused_at_intake_naming_the_fields(hub: Hub) -> None:
    with hub.client("county") as county:
        answer = county.post(
            "/api/v1/messages",
            json=granted(uid("V"), quantity="999999999999.99", unit_value="999999999999.99"),
        )
    assert answer.status_code == 422
    fields = {e["field"]: e["message"] for e in answer.json()["errors"]}
    assert fields["payload.unit_value"] == "must be at most 999999.99 per unit"
    assert fields["payload.quantity"] == "must be at most 999999.99"


def test_the_largest_voucher_accepted_takes_deliveries_without_overflow(hub: Hub) -> None:
    number = uid("V")
    with hub.client("county") as county, hub.client("provider") as provider:
        for raw in (
            granted(number, quantity="999999.99", unit_value="999999.99"),
            assigned(number, price=None),
        ):
            wait_for_status(county, county.post("/api/v1/messages", json=raw).json()["hub_id"], {"applied"})
        answer = provider.post("/api/v1/messages", json=delivery(number, "999999.99"))
        body = wait_for_status(provider, answer.json()["hub_id"], {"applied", "rejected", "failed"})
        assert body["status"] == "applied", body
        voucher = county.get(f"/api/v1/vouchers/{ORGANISER}/{number}").json()
        assert voucher["deliveries"][0]["voucher_share"] == "999999980000.00"


@pytest.mark.parametrize("spelling", [HETU, HETU.lower(), HETU[:-1] + HETU[-1].lower()])
def test_a_hetu_in_a_path_or_an_id_never_comes_back(hub: Hub, spelling: str) -> None:
    with hub.client("county") as county:
        for path in (
            f"/api/v1/vouchers/{ORGANISER}/{quote(spelling)}",
            f"/api/v1/orders/{ORGANISER}/V-{quote(spelling)}",
            f"/api/v1/settlements/{quote(spelling)}",
            f"/api/v1/messages/{quote(spelling)}",
        ):
            answer = county.get(path)
            assert answer.status_code == 404
            assert spelling.upper() not in answer.text.upper(), answer.text
            assert f"{HETU[:6]}-****" in answer.text


def test_a_hetu_used_as_message_id_is_masked_in_the_conflict(hub: Hub) -> None:
    with hub.client("county") as county:
        for spelling in (HETU, HETU.lower()):
            raw = granted(uid("V"))
            raw["message_id"] = f"paatos_{spelling}"
            first = county.post("/api/v1/messages", json=raw)
            assert first.status_code in (200, 202), first.text
            raw["payload"]["quantity"] = "99"
            conflict = county.post("/api/v1/messages", json=raw)
            assert conflict.status_code == 409
            assert spelling.upper() not in conflict.text.upper(), conflict.text
            assert f"{HETU[:6]}-****" in conflict.text


def test_the_hub_is_healthy_after_all_of_it(hub: Hub) -> None:
    assert httpx.get(f"{hub.url}/health/ready", timeout=10).status_code == 200
