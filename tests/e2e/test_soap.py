"""SOAP 1.1 as a client information system uses it, against `hub run` as a real process.

zeep is the real client (it loads the WSDL from the hub); hand-written XML posted with httpx covers
what zeep would refuse to send: missing elements, wrong types, hostile XML, SOAP 1.2."""

from __future__ import annotations

import re
import select
import socket
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape, quoteattr

import httpx
import pytest
import requests
import zeep
from lxml import etree
from zeep import Plugin
from zeep.exceptions import Fault
from zeep.transports import Transport
from zeep.wsse.username import UsernameToken

import psop_hub.mappings
from tests.e2e.conftest import Hub, wait_for_status
from tests.messages import HETU, ORGANISER, OTHER_ORGANISER, OTHER_PROVIDER, PROVIDER, uid

WSDL_DIR = Path(psop_hub.mappings.__file__).resolve().parent / "wsdl"
WSDL = WSDL_DIR / "psop-hub-v1.wsdl"
XSD = WSDL_DIR / "psop-hub-v1.xsd"
REPOSITORY_LOCATION = "http://localhost:8000/soap/v1"

TNS = "urn:psop-hub:soap:v1"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
PASSWORD_TEXT = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"
)
WSDL_NS = {"wsdl": "http://schemas.xmlsoap.org/wsdl/", "soap": "http://schemas.xmlsoap.org/wsdl/soap/"}

FIELD_PATH = re.compile(r"(VoucherDecision|ServiceOrder|ProviderApproval)(/[A-Z][A-Za-z]*(\[[0-9]+\])?)*")
FINAL = {"APPLIED", "REJECTED", "FAILED", "SUPERSEDED", "REPLACED"}
BAD_HETU = "131052-308U"  # check character wrong: 131052-308T is valid
MAX_BODY = 1_048_576  # HUB_MAX_BODY_BYTES default
QUICK = 5.0  # seconds within which hostile input must be answered

SAFE = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)

Fields = Mapping[str, Any]


# --- zeep --------------------------------------------------------------------------------------


def wsdl_url(hub: Hub) -> str:
    return f"{hub.url}/soap/v1?wsdl"


def soap_client(hub: Hub, who: str, secret: str | None = None) -> zeep.Client:
    """zeep with the WSDL from the running hub, authenticated by a WS-Security UsernameToken."""
    token = UsernameToken(who, hub.secrets[who] if secret is None else secret)
    return zeep.Client(wsdl_url(hub), wsse=token, transport=Transport(timeout=10, operation_timeout=30))


def basic_client(hub: Hub, who: str, secret: str | None = None) -> zeep.Client:
    """zeep authenticated by HTTP Basic only (no WS-Security header)."""
    session = requests.Session()
    session.auth = (who, hub.secrets[who] if secret is None else secret)
    transport = Transport(session=session, timeout=10, operation_timeout=30)
    return zeep.Client(wsdl_url(hub), transport=transport)


@pytest.fixture(scope="module")
def county(hub: Hub) -> zeep.Client:
    return soap_client(hub, "county")


def granted(number: str, message_id: str | None = None, **over: Any) -> dict[str, Any]:
    """A GRANTED decision: regular home care by the hour, 40 hours at 25.00, valid through 2027.
    In the XSD's element order, so that it also serves as hand-written XML."""
    decision: dict[str, Any] = {
        "MessageId": message_id or uid("soap"),
        "DecisionType": "GRANTED",
        "VoucherNumber": number,
        "Organiser": ORGANISER,
        "DecisionDate": date(2026, 11, 1),
        "Client": {"Hetu": HETU, "HomeMunicipality": "091"},
        "Service": {"Code": "KH01", "Name": "Säännöllinen kotihoito"},
        "Unit": "hour",
        "UnitValue": Decimal("25.00"),
        "Quantity": Decimal("40"),
        "ValidFrom": date(2026, 11, 1),
        "ValidTo": date(2027, 12, 31),
    }
    decision.update(over)
    return decision


def decision(type_: str, number: str, **fields: Any) -> dict[str, Any]:
    """Any other voucher decision on the county's voucher."""
    return {
        "MessageId": uid("soap"),
        "DecisionType": type_,
        "VoucherNumber": number,
        "Organiser": ORGANISER,
        **fields,
    }


def order(type_: str, number: str, **fields: Any) -> dict[str, Any]:
    return {
        "MessageId": uid("soap"),
        "OrderType": type_,
        "OrderNumber": number,
        "Organiser": ORGANISER,
        **fields,
    }


def submit(client: zeep.Client, voucher_decision: Fields) -> Any:
    """SubmitVoucherDecision; returns the SubmitResult."""
    return client.service.SubmitVoucherDecision(VoucherDecision=dict(voucher_decision))


def submit_order(client: zeep.Client, service_order: Fields) -> Any:
    return client.service.SubmitServiceOrder(ServiceOrder=dict(service_order))


def wait_status(client: zeep.Client, hub_id: str, timeout: float = 30) -> Any:
    """Poll GetMessageStatus until the message is final."""
    deadline = time.monotonic() + timeout
    status: Any = None
    while time.monotonic() < deadline:
        status = client.service.GetMessageStatus(HubId=hub_id)
        if status.Status in FINAL:
            return status
        time.sleep(0.1)
    raise AssertionError(f"message {hub_id} still {status and status.Status}: {status}")


def accepted_and_applied(client: zeep.Client, result: Any, message_id: str, type_: str) -> str:
    """Check a SubmitResult is ACCEPTED and its message ends APPLIED as `type_`; returns the HubId."""
    assert result.Status == "ACCEPTED", result
    assert result.MessageId == message_id
    status = wait_status(client, result.HubId)
    assert status.Status == "APPLIED", status
    assert (status.HubId, status.MessageId, status.Type) == (result.HubId, message_id, type_)
    assert not (status.Errors is not None and status.Errors.Error), status
    return str(result.HubId)


def zeep_errors(fault: Fault) -> list[tuple[str, str]]:
    """(field, message) of every Error in a zeep fault's detail."""
    if fault.detail is None:
        return []
    errors = [(e.get("field", ""), e.text or "") for e in fault.detail.iter(f"{{{TNS}}}Error")]
    assert_paths(errors)
    return errors


def assert_paths(errors: list[tuple[str, str]]) -> None:
    """Every Error's field is a path of SOAP element names, such as VoucherDecision/Client/Hetu."""
    wrong = [(field, message) for field, message in errors if not FIELD_PATH.fullmatch(field)]
    assert not wrong, f"fields that are not element paths: {wrong} (all errors: {errors})"


def fault_text(fault: Fault) -> str:
    detail = "" if fault.detail is None else etree.tostring(fault.detail, encoding="unicode")
    return f"{fault.code} {fault.message} {detail}"


def client_fault(call: Any, *args: Any, **kwargs: Any) -> Fault:
    """Run a zeep call that must fail with a soap:Client fault; returns the fault."""
    with pytest.raises(Fault) as caught:
        call(*args, **kwargs)
    assert (caught.value.code or "").endswith("Client"), fault_text(caught.value)
    return caught.value


# --- hand-written XML --------------------------------------------------------------------------


def elements(fields: Fields, prefix: str = "") -> str:
    """Child elements in the service namespace: bound to `prefix` (`v1:`, as SoapUI writes them),
    or the default namespace where they are written (as .NET clients do) when it is empty."""
    return "".join(
        f"<{prefix}{name}>"
        + (elements(value, prefix) if isinstance(value, Mapping) else escape(str(value)))
        + f"</{prefix}{name}>"
        for name, value in fields.items()
    )


def security_header(username: str, password: str) -> str:
    """A WS-Security UsernameToken header with the password as text."""
    return (
        f'<wsse:Security xmlns:wsse="{WSSE}" soapenv:mustUnderstand="1"><wsse:UsernameToken>'
        f"<wsse:Username>{escape(username)}</wsse:Username>"
        f"<wsse:Password Type={quoteattr(PASSWORD_TEXT)}>{escape(password)}</wsse:Password>"
        "</wsse:UsernameToken></wsse:Security>"
    )


def envelope(
    operation: str,
    body: str,
    credentials: tuple[str, str] | None,
    namespace: str = SOAP11,
    prolog: str = "",
    prefix: str = "",
) -> bytes:
    """A SOAP envelope around `<operation>body</operation>`."""
    header = security_header(*credentials) if credentials else ""
    declaration = f'xmlns:{prefix.rstrip(":")}="{TNS}"' if prefix else f'xmlns="{TNS}"'
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n{prolog}'
        f'<soapenv:Envelope xmlns:soapenv="{namespace}" {declaration}>'
        f"<soapenv:Header>{header}</soapenv:Header>"
        f"<soapenv:Body><{prefix}{operation}>{body}</{prefix}{operation}></soapenv:Body>"
        "</soapenv:Envelope>"
    ).encode()


def decision_envelope(
    fields: Fields, credentials: tuple[str, str] | None, prolog: str = "", prefix: str = ""
) -> bytes:
    body = f"<{prefix}VoucherDecision>{elements(fields, prefix)}</{prefix}VoucherDecision>"
    return envelope("SubmitVoucherDecision", body, credentials, prolog=prolog, prefix=prefix)


def as_county(hub: Hub) -> tuple[str, str]:
    return ("county", hub.secrets["county"])


def soap_headers(action: str = "SubmitVoucherDecision") -> dict[str, str]:
    return {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{TNS}#{action}"'}


def post(hub: Hub, content: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{hub.url}/soap/v1", content=content, headers=headers or soap_headers(), timeout=30)


@dataclass
class SoapFault:
    """A SOAP 1.1 fault as it came over the wire."""

    code: str
    string: str
    errors: list[tuple[str, str]]

    @property
    def fields(self) -> set[str]:
        return {field for field, _ in self.errors}

    def mentions(self, word: str) -> bool:
        return word.lower() in " ".join([self.string, *(f"{f} {m}" for f, m in self.errors)]).lower()


def fault_of(response: httpx.Response | bytes) -> SoapFault:
    """Parse a SOAP 1.1 fault answer (HTTP 500, text/xml) strictly."""
    if isinstance(response, httpx.Response):
        assert response.status_code == 500, (response.status_code, response.text[:2000])
        assert response.headers["content-type"].startswith("text/xml"), response.headers
        content = response.content
    else:
        content = response
    root = etree.fromstring(content, SAFE)
    assert root.tag == f"{{{SOAP11}}}Envelope", content[:2000]
    fault = root.find(f"{{{SOAP11}}}Body/{{{SOAP11}}}Fault")
    assert fault is not None, content[:2000]
    errors = [(e.get("field", ""), e.text or "") for e in fault.iterfind(f"detail//{{{TNS}}}Error")]
    assert_paths(errors)
    return SoapFault(fault.findtext("faultcode") or "", fault.findtext("faultstring") or "", errors)


def assert_ready(hub: Hub) -> None:
    assert httpx.get(f"{hub.url}/health/ready", timeout=10).status_code == 200


# --- the contract files as served --------------------------------------------------------------


def test_wsdl_and_xsd_are_served_as_in_the_repository(hub: Hub) -> None:
    served = httpx.get(wsdl_url(hub), timeout=10)
    assert served.status_code == 200
    assert "xml" in served.headers["content-type"]
    tree = etree.fromstring(served.content, SAFE)
    address = tree.find("wsdl:service/wsdl:port/soap:address", WSDL_NS)
    assert address is not None and address.get("location") == f"{hub.url}/soap/v1"

    expected = etree.fromstring(WSDL.read_bytes(), SAFE)
    expected_address = expected.find("wsdl:service/wsdl:port/soap:address", WSDL_NS)
    assert expected_address is not None and expected_address.get("location") == REPOSITORY_LOCATION
    expected_address.set("location", f"{hub.url}/soap/v1")
    assert etree.tostring(tree, method="c14n") == etree.tostring(expected, method="c14n")
    # and nothing else changed, not even whitespace or comments
    assert served.content == WSDL.read_bytes().replace(
        REPOSITORY_LOCATION.encode(), f"{hub.url}/soap/v1".encode()
    )

    xsd = httpx.get(f"{hub.url}/soap/v1?xsd", timeout=10)
    assert xsd.status_code == 200
    assert "xml" in xsd.headers["content-type"]
    assert xsd.content == XSD.read_bytes()
    etree.XMLSchema(etree.fromstring(xsd.content, SAFE))


# --- zeep, the real client ---------------------------------------------------------------------


def test_voucher_granted_assigned_amended_revoked_through_zeep(hub: Hub, county: zeep.Client) -> None:
    number = uid("PS")
    grant = granted(number)
    accepted_and_applied(county, submit(county, grant), grant["MessageId"], "voucher.granted")

    assign = decision(
        "ASSIGNED", number, Provider=PROVIDER, ProviderPrice=Decimal("30.00"), StartDate=date(2026, 11, 1)
    )
    accepted_and_applied(county, submit(county, assign), assign["MessageId"], "voucher.assigned")

    amend = decision("AMENDED", number, Version=2, Quantity=Decimal("50"))
    accepted_and_applied(county, submit(county, amend), amend["MessageId"], "voucher.amended")

    with hub.client("county") as rest:
        voucher = rest.get(f"/api/v1/vouchers/{ORGANISER}/{number}").json()
        assert voucher["status"] == "assigned"
        assert voucher["unit"] == "hour"
        assert voucher["unit_value"] == "25.00"
        assert voucher["quantity"] == "50.00"
        assert voucher["provider"] == PROVIDER
        assert voucher["provider_price"] == "30.00"
        assert voucher["version"] == 2
        assert voucher["service"] == {"code": "KH01", "name": "Säännöllinen kotihoito"}
        assert voucher["home_municipality"] == "091"

        revoke = decision(
            "REVOKED",
            number,
            Version=3,
            EffectiveDate=date(2027, 1, 1),
            Reason="Asiakas muutti toiselle paikkakunnalle",
        )
        accepted_and_applied(county, submit(county, revoke), revoke["MessageId"], "voucher.revoked")
        voucher = rest.get(f"/api/v1/vouchers/{ORGANISER}/{number}").json()
        assert voucher["status"] == "revoked"
        assert voucher["revoked_from"] == "2027-01-01"
        assert voucher["revoked_reason"] == "Asiakas muutti toiselle paikkakunnalle"
        assert voucher["version"] == 3


def approval(provider: str, version: int = 1, **fields: Any) -> dict[str, Any]:
    """A ProviderApproval of the county's, in the XSD's element order."""
    record: dict[str, Any] = {
        "MessageId": uid("soap"),
        "Organiser": ORGANISER,
        "Provider": provider,
        "Version": version,
        "ServiceCode": ["KH01", "SA01"],
        "ValidFrom": date(2026, 1, 1),
    }
    record.update(fields)
    return record


def submit_approval(client: zeep.Client, provider_approval: Fields) -> Any:
    """SubmitProviderApproval; returns the SubmitResult."""
    return client.service.SubmitProviderApproval(ProviderApproval=dict(provider_approval))


def test_provider_approval_through_zeep_lets_the_provider_assign_itself(
    hub: Hub, county: zeep.Client
) -> None:
    number = uid("PS")
    grant = granted(number)
    accepted_and_applied(county, submit(county, grant), grant["MessageId"], "voucher.granted")
    take = {
        "message_id": uid("take"),
        "type": "voucher.assigned",
        "sent_at": "2026-11-02T08:15:00+02:00",
        "payload": {
            "voucher_number": number,
            "organiser": ORGANISER,
            "provider": PROVIDER,
            "provider_price": "30.00",
            "start_date": "2026-11-01",
        },
    }
    with hub.client("provider") as provider:
        # before the approval, the provider's choice of itself is refused by the rule
        refused = provider.post("/api/v1/messages", json=take).json()
        body = wait_for_status(provider, refused["hub_id"], {s.lower() for s in FINAL})
        assert body["status"] == "rejected"
        assert body["errors"][0]["field"] == "payload.provider"  # type: ignore[index]

        approve = approval(PROVIDER, ValidTo=date(2027, 12, 31))
        result = submit_approval(county, approve)
        accepted_and_applied(county, result, approve["MessageId"], "provider.approved")
        # a resend is a duplicate with the first HubId
        again = submit_approval(county, approve)
        assert (again.Status, again.HubId) == ("DUPLICATE", result.HubId)

        taken = provider.post("/api/v1/messages", json={**take, "message_id": uid("take")}).json()
        assert wait_for_status(provider, taken["hub_id"], {"applied", "rejected"})["status"] == "applied"
        assert provider.get(f"/api/v1/vouchers/{ORGANISER}/{number}").json()["provider"] == PROVIDER

    path = f"/api/v1/providers/{ORGANISER}/{PROVIDER}"
    expected = {
        "organiser": ORGANISER,
        "provider": PROVIDER,
        "version": 1,
        "service_codes": ["KH01", "SA01"],
        "valid_from": "2026-01-01",
        "valid_to": "2027-12-31",
    }
    for who in ("county", "provider", "admin"):
        with hub.client(who) as client:
            answer = client.get(path)
            assert answer.status_code == 200, (who, answer.text)
            assert answer.json() == expected
    with hub.client("county") as client:
        missing = client.get(f"/api/v1/providers/{ORGANISER}/{OTHER_PROVIDER}")
    assert missing.status_code == 404
    for who in ("other-provider", "other-county"):
        with hub.client(who) as client:
            stranger = client.get(path)
        # someone else's approval is answered exactly like a missing one
        assert (stranger.status_code, stranger.headers["content-type"]) == (404, "application/problem+json")
        assert stranger.json() == {
            **missing.json(),
            "detail": missing.json()["detail"].replace(OTHER_PROVIDER, PROVIDER),
        }


def test_provider_approval_faults_name_the_element(hub: Hub, county: zeep.Client) -> None:
    fault = client_fault(submit_approval, county, approval(PROVIDER, ServiceCode=["KH01", "KH01"]))
    assert ("ProviderApproval/ServiceCode", "lists service code KH01 more than once") in zeep_errors(fault)
    fault = client_fault(
        submit_approval, county, approval(PROVIDER, ValidFrom=date(2026, 6, 1), ValidTo=date(2026, 5, 31))
    )
    # the other field is named as the sender wrote it, never by its REST name
    assert ("ProviderApproval/ValidTo", "must not be before ValidFrom") in zeep_errors(fault)
    fault = client_fault(submit_approval, county, approval(PROVIDER, Organiser=OTHER_ORGANISER))
    assert "organiser" in fault_text(fault).lower()
    # a provider may not approve itself
    fault = client_fault(submit_approval, soap_client(hub, "provider"), approval(PROVIDER))
    assert "may not send provider.approved" in fault_text(fault)


def test_order_placed_and_ended_through_zeep(hub: Hub, county: zeep.Client) -> None:
    number = uid("OP")
    place = order(
        "PLACED",
        number,
        Provider=PROVIDER,
        Client={"Hetu": HETU, "HomeMunicipality": "049"},
        Service={"Code": "FT02", "Name": "Fysioterapia"},
        Unit="visit",
        UnitPrice=Decimal("42.00"),
        Quantity=Decimal("50"),
        StartDate=date(2026, 11, 1),
        EndDate=date(2027, 6, 30),
    )
    accepted_and_applied(county, submit_order(county, place), place["MessageId"], "order.placed")
    end = order("ENDED", number, Version=2, EndDate=date(2026, 12, 31))
    accepted_and_applied(county, submit_order(county, end), end["MessageId"], "order.ended")
    with hub.client("county") as rest:
        found = rest.get(f"/api/v1/orders/{ORGANISER}/{number}").json()
    assert found["status"] == "ended"
    assert found["end_date"] == "2026-12-31"
    assert found["version"] == 2
    assert (found["provider"], found["unit"], found["unit_price"], found["quantity"]) == (
        PROVIDER,
        "visit",
        "42.00",
        "50.00",
    )


def test_resend_is_duplicate_with_the_first_hub_id_and_changed_content_is_a_conflict(
    county: zeep.Client,
) -> None:
    grant = granted(uid("PS"))
    first = submit(county, grant)
    assert first.Status == "ACCEPTED"
    again = submit(county, grant)
    assert (again.Status, again.HubId, again.MessageId) == ("DUPLICATE", first.HubId, grant["MessageId"])

    fault = client_fault(submit, county, {**grant, "Quantity": Decimal("41")})
    assert "already used" in fault_text(fault)
    assert wait_status(county, first.HubId).Status == "APPLIED"


def test_http_basic_authentication_is_accepted(hub: Hub) -> None:
    client = basic_client(hub, "county")
    grant = granted(uid("PS"))
    accepted_and_applied(client, submit(client, grant), grant["MessageId"], "voucher.granted")
    wrong = basic_client(hub, "county", secret="not-the-secret")
    client_fault(submit, wrong, granted(uid("PS")))


def test_get_message_status_of_another_clients_message_is_not_found(hub: Hub, county: zeep.Client) -> None:
    hub_id = submit(county, granted(uid("PS"))).HubId
    other = soap_client(hub, "other-county")
    fault = client_fault(other.service.GetMessageStatus, HubId=hub_id)
    assert re.search(r"not found|no message", fault.message or "", re.IGNORECASE), fault_text(fault)
    unknown_id = "00000000-0000-4000-8000-000000000000"
    unknown = client_fault(other.service.GetMessageStatus, HubId=unknown_id)
    assert unknown.message.replace(unknown_id, "ID") == fault.message.replace(hub_id, "ID")  # no oracle
    client_fault(county.service.GetMessageStatus, HubId="not-a-uuid")
    with hub.client("other-county") as rest:
        assert rest.get(f"/api/v1/messages/{hub_id}").status_code == 404


# --- invalid input -----------------------------------------------------------------------------


def test_invalid_hetu_is_a_client_fault_on_that_field_without_the_hetu(county: zeep.Client) -> None:
    number = uid("PS")
    fault = client_fault(
        submit, county, granted(number, Client={"Hetu": BAD_HETU, "HomeMunicipality": "091"})
    )
    assert "VoucherDecision/Client/Hetu" in {field for field, _ in zeep_errors(fault)}, fault_text(fault)
    assert BAD_HETU not in fault_text(fault)


STYLES = pytest.mark.parametrize("prefix", ["", "v1:"], ids=["default-namespace", "prefixed"])


@STYLES
def test_missing_required_element_is_named(hub: Hub, prefix: str) -> None:
    fields = granted(uid("PS"))
    del fields["Organiser"]
    fault = fault_of(post(hub, decision_envelope(fields, as_county(hub), prefix=prefix)))
    assert fault.code.endswith("Client"), fault
    assert len(fault.errors) == 1, fault  # one problem, one Error
    field, message = fault.errors[0]
    assert field == "VoucherDecision/Organiser", fault
    assert "required" in message, fault


@STYLES
def test_wrong_type_is_named(hub: Hub, prefix: str) -> None:
    fields = granted(uid("PS"), UnitValue="abc")
    fault = fault_of(post(hub, decision_envelope(fields, as_county(hub), prefix=prefix)))
    assert fault.code.endswith("Client"), fault
    assert fault.fields == {"VoucherDecision/UnitValue"}, fault
    assert len(fault.errors) == 1, fault  # one problem, one Error


@STYLES
def test_every_error_is_listed_at_once(hub: Hub, prefix: str) -> None:
    fields = granted(
        uid("PS"),
        Client={"Hetu": BAD_HETU, "HomeMunicipality": "91"},
        UnitValue="-1",
        Quantity="0",
        ValidTo="2020-01-01",
    )
    response = post(hub, decision_envelope(fields, as_county(hub), prefix=prefix))
    assert BAD_HETU not in response.text
    fault = fault_of(response)
    assert fault.code.endswith("Client"), fault
    expected = {
        "VoucherDecision/Client/Hetu",
        "VoucherDecision/Client/HomeMunicipality",
        "VoucherDecision/UnitValue",
        "VoucherDecision/Quantity",
        "VoucherDecision/ValidTo",
    }
    assert sorted(field for field, _ in fault.errors) == sorted(expected), fault  # each once


def test_hetu_in_a_wrong_field_does_not_come_back(hub: Hub) -> None:
    # a client system that puts the HETU where the provider's business ID belongs
    assign = decision("ASSIGNED", uid("PS"), Provider=HETU, StartDate="2026-11-01")
    response = post(hub, decision_envelope(assign, as_county(hub)))
    assert HETU not in response.text
    assert "VoucherDecision/Provider" in fault_of(response).fields


@STYLES
def test_several_wrong_types_are_listed_at_once(hub: Hub, prefix: str) -> None:
    fields = granted(uid("PS"), UnitValue="abc", Quantity="lots", ValidFrom="1.11.2026")
    fault = fault_of(post(hub, decision_envelope(fields, as_county(hub), prefix=prefix)))
    assert fault.code.endswith("Client"), fault
    expected = {"VoucherDecision/UnitValue", "VoucherDecision/Quantity", "VoucherDecision/ValidFrom"}
    assert sorted(field for field, _ in fault.errors) == sorted(expected), fault  # each once


def test_element_the_decision_type_does_not_use_is_refused_on_that_field(county: zeep.Client) -> None:
    revoke = decision("REVOKED", uid("PS"), Version=2, EffectiveDate=date(2027, 1, 1), Quantity=Decimal("5"))
    fault = client_fault(submit, county, revoke)
    assert "VoucherDecision/Quantity" in {field for field, _ in zeep_errors(fault)}, fault_text(fault)


# --- who may send ------------------------------------------------------------------------------


def test_bad_password_is_a_client_fault(hub: Hub) -> None:
    wrong = soap_client(hub, "county", secret="not-the-secret")
    client_fault(submit, wrong, granted(uid("PS")))
    for credentials in (("county", "not-the-secret"), ("nobody", hub.secrets["county"])):
        fault = fault_of(post(hub, decision_envelope(granted(uid("PS")), credentials)))
        assert fault.code.endswith("Client"), fault
        assert hub.secrets["county"] not in fault.string


def test_no_credentials_is_a_client_fault(hub: Hub) -> None:
    fault = fault_of(post(hub, decision_envelope(granted(uid("PS")), None)))
    assert fault.code.endswith("Client"), fault
    anonymous = zeep.Client(wsdl_url(hub), transport=Transport(timeout=10, operation_timeout=30))
    client_fault(submit, anonymous, granted(uid("PS")))


def test_writing_for_another_organiser_is_a_client_fault(county: zeep.Client) -> None:
    fault = client_fault(submit, county, granted(uid("PS"), Organiser=OTHER_ORGANISER))
    assert "organiser" in fault_text(fault).lower()


# --- hostile input -----------------------------------------------------------------------------


def billion_laughs() -> str:
    """A DTD whose entity lol9 expands to 10^9 times "lol"."""
    lines = ['<!ENTITY lol0 "lol">']
    for i in range(1, 10):
        reference = f"&lol{i - 1};"
        lines.append(f'<!ENTITY lol{i} "{reference * 10}">')
    return "<!DOCTYPE lolz [\n" + "\n".join(lines) + "\n]>\n"


EXTERNAL_ENTITY = '<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'


@pytest.mark.parametrize(
    ("prolog", "entity"), [(billion_laughs(), "&lol9;"), (EXTERNAL_ENTITY, "&xxe;")], ids=["laughs", "xxe"]
)
def test_hostile_xml_is_refused_quickly(hub: Hub, prolog: str, entity: str) -> None:
    fields = granted(uid("PS"))
    body = decision_envelope(fields, as_county(hub), prolog=prolog).replace(
        escape(fields["Service"]["Name"]).encode(), entity.encode()
    )
    assert entity.encode() in body
    started = time.monotonic()
    response = post(hub, body)
    assert time.monotonic() - started < QUICK
    fault = fault_of(response)
    assert fault.code.endswith("Client"), fault
    assert fault.mentions("DTD"), fault
    assert "root:" not in response.text and "lollol" not in response.text
    assert_ready(hub)


def _pieces(first: bytes, total: int, chunked: bool) -> Iterator[bytes]:
    """`first`, then filler up to `total` body bytes, as chunks if `chunked`."""
    sent = 0
    while sent < total:
        piece = first if sent == 0 else b"A" * min(1 << 16, total - sent)
        sent += len(piece)
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece
    if chunked:
        yield b"0\r\n\r\n"


def post_huge(hub: Hub, total: int, chunked: bool) -> tuple[int, dict[str, str], bytes]:
    """POST a `total`-byte SOAP body over a raw socket, stopping as soon as the hub answers (an
    HTTP client would insist on sending all of it first); returns status, headers and body."""
    url = urlsplit(hub.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}"
    head = (
        f"POST /soap/v1 HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: text/xml; charset=utf-8\r\n"
        f'SOAPAction: "{TNS}#SubmitVoucherDecision"\r\n{framing}\r\nConnection: close\r\n\r\n'
    )
    revoke = decision("REVOKED", uid("PS"), Version=2, EffectiveDate="2027-01-01", Reason="@FILL@")
    opening = decision_envelope(revoke, as_county(hub)).split(b"@FILL@")[0]  # ends inside <Reason>
    received = b""
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(head.encode())
        sock.settimeout(1.0)
        try:
            for piece in _pieces(opening, total, chunked):
                if select.select([sock], [], [], 0)[0]:
                    break  # the hub has answered (or closed): stop sending
                sock.sendall(piece)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            pass  # the hub stopped reading: read its answer
        sock.settimeout(10)
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                received += data
                head_end = received.find(b"\r\n\r\n")
                if head_end >= 0:
                    length = _content_length(received[:head_end])
                    if length is not None and len(received) >= head_end + 4 + length:
                        break
        except (TimeoutError, ConnectionResetError):
            pass
    assert received, "the hub closed the connection without an answer"
    raw_head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = raw_head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


def _content_length(head: bytes) -> int | None:
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            return int(value.strip())
    return None


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_over_the_limit_is_refused_quickly(hub: Hub, chunked: bool) -> None:
    started = time.monotonic()
    status, headers, body = post_huge(hub, 50 * MAX_BODY, chunked)
    assert time.monotonic() - started < QUICK
    assert status in (413, 500), (status, body[:2000])
    if status == 500:
        assert headers["content-type"].startswith("text/xml"), headers
        assert fault_of(body).code.endswith("Client"), body[:2000]
    assert_ready(hub)


def test_soap12_envelope_is_told_to_use_soap11(hub: Hub) -> None:
    body = f"<VoucherDecision>{elements(granted(uid('PS')))}</VoucherDecision>"
    content = envelope("SubmitVoucherDecision", body, ("county", hub.secrets["county"]), namespace=SOAP12)
    headers = {"Content-Type": f'application/soap+xml; charset=utf-8; action="{TNS}#SubmitVoucherDecision"'}
    response = post(hub, content, headers)
    assert response.status_code in (400, 415, 500), response.text
    assert "Fault" in response.text, response.text
    assert "SOAP 1.1" in response.text, response.text
    assert_ready(hub)


def test_hub_is_ready_after_all_of_it(hub: Hub) -> None:
    assert_ready(hub)
    grant = granted(uid("PS"))
    client = soap_client(hub, "county")
    accepted_and_applied(client, submit(client, grant), grant["MessageId"], "voucher.granted")


# --- limits on what one call may make the hub read and say (issue 13) --------------------------


def test_thousands_of_disallowed_attributes_get_a_short_capped_fault_quickly(hub: Hub) -> None:
    noise = " ".join(f'bad{i}="x"' for i in range(8000)).encode()
    body = decision_envelope(granted(uid("PS")), as_county(hub)).replace(
        b"<VoucherDecision>", b"<VoucherDecision " + noise + b">", 1
    )
    started = time.monotonic()
    response = post(hub, body)
    assert time.monotonic() - started < QUICK
    fault = fault_of(response)
    assert fault.code.endswith("Client"), fault
    assert len(fault.errors) == 100
    count = etree.fromstring(response.content, SAFE).findtext(f".//{{{TNS}}}ErrorCount")
    assert count is not None and int(count) > 100  # 100 XSD errors listed, one counting the rest
    assert len(response.content) < 50_000
    assert_ready(hub)


def test_more_elements_and_attributes_than_the_limit_are_refused_unread(hub: Hub) -> None:
    noise = " ".join(f'bad{i}="x"' for i in range(12_000)).encode()
    body = decision_envelope(granted(uid("PS")), as_county(hub)).replace(
        b"<VoucherDecision>", b"<VoucherDecision " + noise + b">", 1
    )
    fault = fault_of(post(hub, body))
    assert fault.code.endswith("Client"), fault
    assert fault.mentions("more than 10000 XML elements and attributes"), fault
    assert_ready(hub)


def test_an_unknown_must_understand_header_is_a_fault_and_nothing_is_stored(hub: Hub) -> None:
    fields = granted(uid("PS"))
    body = decision_envelope(fields, as_county(hub)).replace(
        b"</soapenv:Header>",
        b'<x:Tx xmlns:x="urn:example:tx" soapenv:mustUnderstand="1">7</x:Tx></soapenv:Header>',
    )
    fault = fault_of(post(hub, body))
    assert fault.code == "soap:MustUnderstand", fault
    first = post(hub, decision_envelope(fields, as_county(hub)))  # the faulted call stored nothing
    assert first.status_code == 200, first.text
    assert "ACCEPTED" in first.text and "DUPLICATE" not in first.text


# --- faults that point at the right field (issue 12) -------------------------------------------


class Rewrite(Plugin):
    """Edits what zeep sends, as a sender's own stack might: the envelope, the SOAPAction header."""

    def __init__(self, edit: Any = None, action: str | None = None) -> None:
        self.edit, self.action = edit, action

    def egress(
        self, envelope: Any, http_headers: dict[str, str], operation: Any, binding_options: Any
    ) -> Any:
        if self.edit is not None:
            self.edit(envelope.find(f".//{{{TNS}}}VoucherDecision"))
        if self.action is not None:
            http_headers["SOAPAction"] = self.action
        return envelope, http_headers


def edited_client(hub: Hub, edit: Any = None, action: str | None = None) -> zeep.Client:
    """zeep as the county, with its requests edited on the way out."""
    token = UsernameToken("county", hub.secrets["county"])
    transport = Transport(timeout=10, operation_timeout=30)
    return zeep.Client(wsdl_url(hub), wsse=token, transport=transport, plugins=[Rewrite(edit, action)])


def child(parent: Any, name: str) -> Any:
    found = parent.find(f"{{{TNS}}}{name}")
    assert found is not None, name
    return found


def test_an_unknown_element_is_named_where_it_is_and_a_missing_one_is_still_reported(hub: Hub) -> None:
    def colour_instead_of_organiser(decision: Any) -> None:
        colour = etree.Element(f"{{{TNS}}}Colour")
        colour.text = "red"
        child(decision, "Unit").addnext(colour)
        decision.remove(child(decision, "Organiser"))

    fault = client_fault(submit, edited_client(hub, colour_instead_of_organiser), granted(uid("PS")))
    assert sorted(zeep_errors(fault)) == [
        (
            "VoucherDecision/Colour",
            "is not an element of VoucherDecision (the XSD, /soap/v1?xsd, lists its elements in order)",
        ),
        ("VoucherDecision/Organiser", "is required"),
    ], fault_text(fault)


def test_a_misplaced_element_is_named_with_where_it_belongs(hub: Hub) -> None:
    def valid_from_first(decision: Any) -> None:
        valid_from = child(decision, "ValidFrom")
        decision.remove(valid_from)
        child(decision, "Unit").addprevious(valid_from)

    fault = client_fault(submit, edited_client(hub, valid_from_first), granted(uid("PS")))
    assert zeep_errors(fault) == [
        ("VoucherDecision/ValidFrom", "is out of order: it comes after Quantity and before ValidTo")
    ], fault_text(fault)


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"Unit": "hours"}, "Unit", "must be one of hour, visit, day, month, piece"),
        ({"UnitValue": "12,50"}, "UnitValue", "must be a decimal with a point, e.g. 32.50"),
        ({"UnitValue": "12.505"}, "UnitValue", "must have at most two decimals, e.g. 32.50"),
        ({"UnitValue": "-1.00"}, "UnitValue", "must not be negative"),
        ({"Quantity": "0"}, "Quantity", "must be greater than zero"),
        ({"ValidFrom": "1.11.2026"}, "ValidFrom", "must be a date YYYY-MM-DD, e.g. 2026-11-01"),
        (
            {"Organiser": "2077474"},
            "Organiser",
            "must be a Finnish business ID (Y-tunnus), NNNNNNN-N with a valid check digit, e.g. 2077474-0",
        ),
    ],
    ids=["enumeration", "decimal-comma", "three-decimals", "negative", "zero", "date", "pattern"],
)
def test_a_refused_value_is_told_in_plain_words_what_is_allowed(
    hub: Hub, fields: dict[str, str], field: str, message: str
) -> None:
    fault = fault_of(post(hub, decision_envelope(granted(uid("PS"), **fields), as_county(hub))))
    assert fault.code.endswith("Client"), fault
    assert fault.errors == [(f"VoucherDecision/{field}", message)], fault
    for grammar in ("facet", "atomic type", "{urn:", "Element '"):
        assert not fault.mentions(grammar), fault


def test_a_whole_number_and_an_element_in_no_namespace_are_told_plainly(hub: Hub) -> None:
    amend = decision("AMENDED", uid("PS"), Quantity="5", Version="two")
    fault = fault_of(post(hub, decision_envelope(amend, as_county(hub))))
    assert fault.errors == [("VoucherDecision/Version", "must be a whole number, e.g. 2")], fault
    body = decision_envelope(granted(uid("PS")), as_county(hub), prefix="v1:").replace(
        b"<v1:Unit>hour</v1:Unit>", b"<Unit>hour</Unit>"
    )
    fault = fault_of(post(hub, body))
    assert fault.errors == [
        ("VoucherDecision/Unit", "is in no namespace: the elements of a VoucherDecision are in " + TNS)
    ], fault


def status_errors(status: Any) -> list[tuple[str, str]]:
    """(field, message) of the Errors of a MessageStatus, as zeep reads them."""
    items = [] if status.Errors is None else status.Errors.Error or []
    return [(item.field, item._value_1) for item in items]


def test_get_message_status_names_soap_elements_not_rest_fields(hub: Hub, county: zeep.Client) -> None:
    number = uid("PS")
    grant = granted(number)
    accepted_and_applied(county, submit(county, grant), grant["MessageId"], "voucher.granted")
    # the voucher is valid from 2026-11-01: an amendment ending it before that breaks a rule
    result = submit(county, decision("AMENDED", number, Version=2, ValidTo=date(2026, 10, 1)))
    status = wait_status(county, result.HubId)
    assert status.Status == "REJECTED", status
    assert status_errors(status) == [
        ("VoucherDecision/ValidTo", "ValidTo 2026-10-01 is before the voucher's ValidFrom 2026-11-01")
    ], status
    assert_paths(status_errors(status))
    with hub.client("county") as rest:  # REST keeps its own names
        errors = rest.get(f"/api/v1/messages/{result.HubId}").json()["errors"]
    assert [e["field"] for e in errors] == ["payload.valid_to"]


def test_a_soap_action_naming_another_operation_is_refused(hub: Hub, county: zeep.Client) -> None:
    grant = granted(uid("PS"))
    wrong = edited_client(hub, action=f'"{TNS}#SubmitServiceOrder"')
    fault = client_fault(submit, wrong, grant)
    assert fault.message == (
        "the SOAPAction header names SubmitServiceOrder, but the Body holds SubmitVoucherDecision: "
        f'send SOAPAction "{TNS}#SubmitVoucherDecision" (the WSDL\'s soapAction for '
        "SubmitVoucherDecision) or none"
    ), fault_text(fault)
    assert submit(county, grant).Status == "ACCEPTED"  # the refused call stored nothing
    # the WSDL's own action (zeep's), the bare operation name and an empty one are all fine
    for action in ('"SubmitVoucherDecision"', '""'):
        assert submit(edited_client(hub, action=action), granted(uid("PS"))).Status == "ACCEPTED"
