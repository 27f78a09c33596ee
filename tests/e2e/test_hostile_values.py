"""Hostile values, the same over REST, SOAP and the file drop, against `hub run`: SQL and script
fragments in every string field (stored verbatim, never executed, escaped on the admin page),
numbers with exponents or thousands of digits, impossible dates, and HETUs with a birth date in
the future. A refused value gets a 4xx, a Client fault or a rejected record naming its field;
nothing of it is stored, and the hub stays healthy. (Malformed bodies: test_malformed.py; hostile
XML: test_soap.py and test_filedrop_hostile.py.)"""

from __future__ import annotations

import html
import re
from datetime import date
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.e2e import test_soap as soap
from tests.e2e.conftest import Hub, wait_for_status
from tests.e2e.test_filedrop import batch, decision, drop, receipt_of
from tests.messages import HETU, ORGANISER, granted, uid

CHECK_CHARACTERS = "0123456789ABCDEFHJKLMNPRSTUVWXY"


def hetu_of(ddmmyy: str, sign: str, individual: str = "123") -> str:
    """A HETU with the right check character (the century sign is not part of the sum)."""
    return f"{ddmmyy}{sign}{individual}{CHECK_CHARACTERS[int(ddmmyy + individual) % 31]}"


FUTURE = f"0101{(date.today().year + 1) % 100:02d}"  # 1 January of next year, in the 2000s
FUTURE_HETUS = [hetu_of(FUTURE, "A"), hetu_of(FUTURE, "b"), hetu_of("311299", "F")]

# REST field (under payload), SOAP element path, value: each must be refused naming its field.
BAD_VALUES: list[tuple[str, str, str]] = [
    ("quantity", "Quantity", "1e5"),
    ("quantity", "Quantity", "1E+999999"),
    ("quantity", "Quantity", "9" * 5000),
    ("quantity", "Quantity", "0." + "1" * 3000),
    ("unit_value", "UnitValue", "-1e-999999"),
    ("unit_value", "UnitValue", "Infinity"),
    ("decision_date", "DecisionDate", "2026-02-30"),
    ("decision_date", "DecisionDate", "2026-13-01"),
    ("valid_to", "ValidTo", "2027-02-29"),
    ("valid_from", "ValidFrom", "0000-01-01"),
    ("valid_to", "ValidTo", "99999-12-31"),
    *(("client.hetu", "Client/Hetu", hetu) for hetu in FUTURE_HETUS),
    ("client.hetu", "Client/Hetu", hetu_of("310226", "A")),  # 31 February
    # SQL and script in fields of a fixed format: refused like any other wrong value.
    ("unit", "Unit", "hour' OR '1'='1"),
    ("unit", "Unit", "<script>alert(1)</script>"),
    ("quantity", "Quantity", "1; DROP TABLE vouchers"),
    ("decision_date", "DecisionDate", "2026-11-01' OR '1'='1"),
    ("client.hetu", "Client/Hetu", "131052-308T' OR '1'='1"),
]
IDS = [f"{field}={value[:16]}" for field, _, value in BAD_VALUES]


def rest_payload(number: str, field: str, value: str) -> dict[str, Any]:
    raw = granted(number)
    if field == "client.hetu":
        raw["payload"]["client"]["hetu"] = value
    else:
        raw["payload"][field] = value
    return raw


def soap_fields(number: str, path: str, value: str) -> dict[str, Any]:
    fields = soap.granted(number)
    if path == "Client/Hetu":
        fields["Client"] = {"Hetu": value, "HomeMunicipality": "091"}
    else:
        fields[path] = value
    return fields


def file_record(number: str, path: str, value: str) -> str:
    fields = {k: v for k, v in soap_fields(number, path, value).items() if k not in ("MessageId",)}
    fields.pop("DecisionType")
    fields.pop("VoucherNumber")
    fields.pop("Organiser")
    inner = {
        k: (soap.elements(v, "v:") if isinstance(v, dict) else html.escape(str(v))) for k, v in fields.items()
    }
    return decision("GRANTED", number, **inner)


def not_stored(hub: Hub, number: str) -> None:
    with hub.client("county") as county:
        answer = county.get(f"/api/v1/vouchers/{ORGANISER}/{quote(number, safe='')}")
    assert answer.status_code == 404, answer.text


@pytest.mark.parametrize(("field", "path", "value"), BAD_VALUES, ids=IDS)
def test_rest_refuses_the_value_naming_the_field(hub: Hub, field: str, path: str, value: str) -> None:
    number = uid("HV")
    with hub.client("county") as county:
        answer = county.post("/api/v1/messages", json=rest_payload(number, field, value))
    assert answer.status_code == 422, answer.text[:500]
    assert answer.headers["content-type"] == "application/problem+json"
    assert f"payload.{field}" in {e["field"] for e in answer.json()["errors"]}, answer.text[:500]
    assert len(answer.content) < 10_000  # thousands of digits are not echoed back
    not_stored(hub, number)


@pytest.mark.parametrize(("field", "path", "value"), BAD_VALUES, ids=IDS)
def test_soap_refuses_the_value_with_a_client_fault_on_the_element(
    hub: Hub, field: str, path: str, value: str
) -> None:
    number = uid("HV")
    answer = soap.post(hub, soap.decision_envelope(soap_fields(number, path, value), soap.as_county(hub)))
    fault = soap.fault_of(answer)
    assert fault.code.endswith("Client"), fault
    assert f"VoucherDecision/{path}" in fault.fields, fault
    assert len(answer.content) < 20_000
    if field == "client.hetu":
        assert value.upper() not in answer.text.upper()
    not_stored(hub, number)


def test_the_file_drop_rejects_each_record_naming_the_element(hub: Hub) -> None:
    numbers = [uid("HV") for _ in BAD_VALUES]
    records = [file_record(n, path, value) for n, (_, path, value) in zip(numbers, BAD_VALUES, strict=True)]
    receipt = receipt_of(drop(hub, "county", f"hostile-values-{uid('f')}.xml", batch(*records)))
    assert (receipt["records"], receipt["accepted"]) == (len(BAD_VALUES), 0), receipt
    for rejected, (_, path, value) in zip(receipt["rejected"], BAD_VALUES, strict=True):
        fields = {e["field"] for e in rejected["errors"]}
        assert f"VoucherDecision/{path}" in fields, (value[:20], rejected)
    text = str(receipt).upper()
    assert not [h for h in FUTURE_HETUS if h.upper() in text], receipt
    for number in numbers:
        not_stored(hub, number)


# --- SQL and script fragments: stored as sent, never executed ----------------------------------

SQL = "'; DROP TABLE vouchers; --"
SCRIPT = "<script>alert('psop')</script>"
IMG = '"><img src=x onerror=alert(1)>'


def fragments(tag: str) -> dict[str, str]:
    """A value with a fragment for every string field a voucher decision has."""
    return {
        "message_id": f"m-{uid(tag)}'); DELETE FROM messages; --",
        "correlation_id": f"c-{IMG}",
        "voucher_number": f"V-{uid(tag)}{SQL}",
        "service_code": "KH' OR '1'='1",
        "service_name": f"{SCRIPT} {SQL}",
    }


def assert_verbatim(hub: Hub, values: dict[str, str]) -> dict[str, Any]:
    with hub.client("county") as county:
        answer = county.get(f"/api/v1/vouchers/{ORGANISER}/{quote(values['voucher_number'], safe='')}")
    assert answer.status_code == 200, answer.text
    voucher: dict[str, Any] = answer.json()
    assert voucher["service"] == {"code": values["service_code"], "name": values["service_name"]}, voucher
    return voucher


def sign_in(hub: Hub) -> httpx.Client:
    """An httpx client signed in to the admin page as the session's admin."""
    browser = httpx.Client(base_url=hub.url, timeout=30, follow_redirects=True)
    form = browser.get("/admin/sign-in")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text
    signed = browser.post(
        "/admin/sign-in",
        data={
            "csrf_token": token.group(1),
            "name": "admin",
            "secret": hub.secrets["admin"],
            "next": "/admin/",
        },
    )
    assert signed.status_code == 200 and "sign-in" not in str(signed.url), signed.text[:500]
    return browser


def assert_escaped_on_the_admin_page(hub: Hub, hub_id: str, values: dict[str, str]) -> None:
    browser = sign_in(hub)
    try:
        shown = browser.get(f"/admin/messages/{hub_id}")
        listed = browser.get("/admin/messages", params={"q": values["message_id"]})
    finally:
        browser.close()
    for answer in (shown, listed):
        assert answer.status_code == 200, answer.text[:500]
        assert "<script>alert" not in answer.text and "<img src=x" not in answer.text, answer.url
        assert hub_id in answer.text, answer.url  # the message is on the page
    assert "&lt;script&gt;alert(" in shown.text, shown.text[:3000]


def test_rest_stores_fragments_verbatim_and_the_admin_page_escapes_them(hub: Hub) -> None:
    values = fragments("SQLR")
    raw = granted(values["voucher_number"])
    raw["message_id"], raw["correlation_id"] = values["message_id"], values["correlation_id"]
    raw["payload"]["service"] = {"code": values["service_code"], "name": values["service_name"]}
    with hub.client("county") as county:
        answer = county.post("/api/v1/messages", json=raw)
        assert answer.status_code == 202, answer.text
        hub_id = answer.json()["hub_id"]
        body = wait_for_status(county, hub_id, {"applied", "rejected", "failed"})
    assert body["status"] == "applied", body
    assert (body["message_id"], body.get("correlation_id")) == (
        values["message_id"],
        values["correlation_id"],
    )
    assert_verbatim(hub, values)
    assert_escaped_on_the_admin_page(hub, hub_id, values)


def test_soap_stores_fragments_verbatim(hub: Hub, county: Any) -> None:
    values = fragments("SQLS")
    fields = soap.granted(values["voucher_number"], message_id=values["message_id"])
    fields["Service"] = {"Code": values["service_code"], "Name": values["service_name"]}
    result = soap.submit(county, fields)
    soap.accepted_and_applied(county, result, values["message_id"], "voucher.granted")
    assert_verbatim(hub, values)


def test_the_file_drop_stores_fragments_verbatim(hub: Hub) -> None:
    values = fragments("SQLF")
    code, name = html.escape(values["service_code"]), html.escape(values["service_name"])
    service = f"<v:Code>{code}</v:Code><v:Name>{name}</v:Name>"
    record = decision(
        "GRANTED",
        html.escape(values["voucher_number"]),
        DecisionDate="2026-11-01",
        Client=f"<v:Hetu>{HETU}</v:Hetu><v:HomeMunicipality>853</v:HomeMunicipality>",
        Service=service,
        Unit="hour",
        UnitValue="25.00",
        Quantity="40",
        ValidFrom="2026-11-01",
        ValidTo="2027-10-31",
    )
    receipt = receipt_of(drop(hub, "county", f"fragments-{uid('f')}.xml", batch(record)))
    assert receipt["accepted"] == 1, receipt
    with hub.client("county") as client:
        wait_for_status(client, receipt["messages"][0]["hub_id"], {"applied"})
    assert_verbatim(hub, values)


@pytest.fixture(scope="module")
def county(hub: Hub) -> Any:
    return soap.soap_client(hub, "county")


def test_the_hub_is_healthy_after_all_of_it(hub: Hub) -> None:
    assert httpx.get(f"{hub.url}/health/ready", timeout=10).status_code == 200
    with hub.client("county") as county:  # the tables the fragments named are all there
        answer = county.post("/api/v1/messages", json=granted(uid("HV")))
        assert wait_for_status(county, answer.json()["hub_id"], {"applied", "failed"})["status"] == "applied"
