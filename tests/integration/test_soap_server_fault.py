"""A temporary failure answers soap:Server (send again), never a Client fault or a result."""

from __future__ import annotations

from fastapi.testclient import TestClient
from lxml import etree

from psop_hub.api.app import create_app
from psop_hub.bootstrap import api_services
from psop_hub.hub.settings import Settings

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
ENVELOPE = (
    f'<soap:Envelope xmlns:soap="{SOAP}" xmlns:t="urn:psop-hub:soap:v1">'
    f'<soap:Header><wsse:Security xmlns:wsse="{WSSE}"><wsse:UsernameToken>'
    "<wsse:Username>county</wsse:Username><wsse:Password>secret</wsse:Password>"
    "</wsse:UsernameToken></wsse:Security></soap:Header>"
    "<soap:Body><t:GetMessageStatus><t:HubId>00000000-0000-0000-0000-000000000000</t:HubId>"
    "</t:GetMessageStatus></soap:Body></soap:Envelope>"
).encode()


def test_database_down_is_a_server_fault(settings: Settings) -> None:
    down = settings.model_copy(
        update={"database_url": "postgresql://root@127.0.0.1:1/nowhere", "relay_interval_s": 60}
    )
    with TestClient(create_app(api_services(down))) as client:
        answer = client.post(
            "/soap/v1", content=ENVELOPE, headers={"Content-Type": "text/xml; charset=utf-8"}
        )
    assert answer.status_code == 500
    fault = etree.fromstring(answer.content).find(f".//{{{SOAP}}}Fault")
    assert fault is not None
    assert fault.findtext("faultcode") == "soap:Server"
    assert "send it again" in (fault.findtext("faultstring") or "")
