"""The SOAP endpoint's envelope rules that need no sender (issue 13): the WSDL's address comes
from HUB_PUBLIC_URL, not from whatever Host header a client sends; a header block marked
mustUnderstand="1" that the hub does not process is a MustUnderstand fault."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from lxml import etree

from psop_hub.api.app import create_app
from psop_hub.bootstrap import api_services
from psop_hub.hub.settings import Settings

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSDL_NS = {"wsdl": "http://schemas.xmlsoap.org/wsdl/", "soap": "http://schemas.xmlsoap.org/wsdl/soap/"}


def envelope(header_blocks: str) -> bytes:
    return (
        f'<soap:Envelope xmlns:soap="{SOAP}" xmlns:t="urn:psop-hub:soap:v1">'
        f"<soap:Header>{header_blocks}</soap:Header>"
        "<soap:Body><t:GetMessageStatus><t:HubId>00000000-0000-0000-0000-000000000000</t:HubId>"
        "</t:GetMessageStatus></soap:Body></soap:Envelope>"
    ).encode()


def wsdl_address(client: TestClient, host: str) -> str | None:
    answer = client.get("/soap/v1?wsdl", headers={"Host": host})
    assert answer.status_code == 200
    address = etree.fromstring(answer.content).find("wsdl:service/wsdl:port/soap:address", WSDL_NS)
    assert address is not None
    return address.get("location")


def test_the_wsdl_address_is_the_configured_public_url_whatever_the_host(settings: Settings) -> None:
    public = settings.model_copy(update={"public_url": "https://hub.example.fi"})
    with TestClient(create_app(api_services(public))) as client:
        assert wsdl_address(client, "evil.example") == "https://hub.example.fi/soap/v1"


def test_without_a_public_url_the_host_header_is_the_fallback(settings: Settings) -> None:
    with TestClient(create_app(api_services(settings))) as client:
        assert wsdl_address(client, "hub.internal:8000") == "http://hub.internal:8000/soap/v1"


@pytest.mark.parametrize("value", ["https://hub.example.fi/", "http://10.0.0.1:8000"])
def test_a_public_url_is_kept_without_its_trailing_slash(value: str) -> None:
    assert Settings(public_url=value).public_url == value.rstrip("/")


@pytest.mark.parametrize("value", ["hub.example.fi", "ftp://hub.example.fi", "https://hub.example.fi/?x=1"])
def test_a_public_url_that_is_not_one_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="public_url"):
        Settings(public_url=value)


@pytest.mark.parametrize("must", ['soap:mustUnderstand="1"', 'soap:mustUnderstand="true"'])
def test_an_unknown_header_that_must_be_understood_is_a_must_understand_fault(
    settings: Settings, must: str
) -> None:
    block = f'<x:Transaction xmlns:x="urn:example:tx" {must}>5</x:Transaction>'
    with TestClient(create_app(api_services(settings))) as client:
        answer = client.post("/soap/v1", content=envelope(block), headers={"Content-Type": "text/xml"})
    assert answer.status_code == 500
    fault = etree.fromstring(answer.content).find(f".//{{{SOAP}}}Fault")
    assert fault is not None
    assert fault.findtext("faultcode") == "soap:MustUnderstand"
    assert "Transaction" in (fault.findtext("faultstring") or "")


def test_an_unknown_header_that_may_be_ignored_is_ignored(settings: Settings) -> None:
    block = '<x:Trace xmlns:x="urn:example:tx" soap:mustUnderstand="0">1</x:Trace>'
    with TestClient(create_app(api_services(settings))) as client:
        answer = client.post("/soap/v1", content=envelope(block), headers={"Content-Type": "text/xml"})
    fault = etree.fromstring(answer.content).find(f".//{{{SOAP}}}Fault")
    assert fault is not None  # no credentials were sent: the fault is about those
    assert fault.findtext("faultcode") == "soap:Client"
    assert "authentication" in (fault.findtext("faultstring") or "")
