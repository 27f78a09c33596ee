"""The XML limits are settings (HUB_MAX_XML_DEPTH, HUB_MAX_XML_NODES), the same for SOAP and
for XML batch files: a valid call or file that the session hub (the defaults) accepts is refused,
with a Client fault or a receipt naming the limit, by an API process or a file adapter whose
limit is lowered; nothing of it is stored."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Hub
from tests.e2e.test_client_lifecycle import start_api
from tests.e2e.test_filedrop import batch, drop, granted, receipt_of
from tests.e2e.test_filedrop_faults import adapter, put
from tests.messages import HETU, ORGANISER, new_business_id, uid

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_NS = "urn:psop-hub:soap:v1"
FILE_NS = "urn:psop-hub:file:v1"
# A GRANTED call is 6 levels deep; a batch record 4. 150 service codes: over 100 nodes.
LOW_DEPTH, LOW_NODES, CODES = 5, 100, 150


def decision_call(number: str) -> bytes:
    fields = (
        f"<t:MessageId>{uid('xl')}</t:MessageId><t:DecisionType>GRANTED</t:DecisionType>"
        f"<t:VoucherNumber>{number}</t:VoucherNumber><t:Organiser>{ORGANISER}</t:Organiser>"
        "<t:DecisionDate>2026-11-01</t:DecisionDate>"
        f"<t:Client><t:Hetu>{HETU}</t:Hetu><t:HomeMunicipality>091</t:HomeMunicipality></t:Client>"
        "<t:Service><t:Code>KH01</t:Code><t:Name>Kotihoito</t:Name></t:Service><t:Unit>hour</t:Unit>"
        "<t:UnitValue>25.00</t:UnitValue><t:Quantity>10</t:Quantity><t:ValidFrom>2026-11-01</t:ValidFrom>"
        "<t:ValidTo>2027-10-31</t:ValidTo>"
    )
    return envelope(
        f"<t:SubmitVoucherDecision><t:VoucherDecision>{fields}</t:VoucherDecision></t:SubmitVoucherDecision>"
    )


def approval_fields(p: str, provider: str) -> str:
    codes = "".join(f"<{p}ServiceCode>S{i:03d}</{p}ServiceCode>" for i in range(CODES))
    return (
        f"<{p}Organiser>{ORGANISER}</{p}Organiser><{p}Provider>{provider}</{p}Provider>"
        f"<{p}Version>1</{p}Version>{codes}<{p}ValidFrom>2026-11-01</{p}ValidFrom>"
    )


def approval_call(provider: str) -> bytes:
    record = f"<t:MessageId>{uid('xl')}</t:MessageId>{approval_fields('t:', provider)}"
    return envelope(
        f"<t:SubmitProviderApproval><t:ProviderApproval>{record}</t:ProviderApproval></t:SubmitProviderApproval>"
    )


def envelope(operation: str) -> bytes:
    return (
        f'<soap:Envelope xmlns:soap="{SOAP11}" xmlns:t="{SOAP_NS}"><soap:Body>{operation}</soap:Body>'
        "</soap:Envelope>"
    ).encode()


def call(hub: Hub, url: str, body: bytes) -> httpx.Response:
    return httpx.post(
        f"{url}/soap/v1",
        content=body,
        headers={"Content-Type": "text/xml; charset=utf-8"},
        auth=("county", hub.secrets["county"]),
        timeout=30,
    )


@pytest.fixture(scope="module")
def low_api(hub: Hub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An API process on the session hub's database, with both XML limits lowered."""
    env = {**os.environ, **{k: v for k, v in hub.env.items() if k.startswith("HUB_")}}
    env |= {"HUB_MAX_XML_DEPTH": str(LOW_DEPTH), "HUB_MAX_XML_NODES": str(LOW_NODES)}
    process, url = start_api(env, tmp_path_factory.mktemp("xmllimits") / "api.log")
    yield url
    process.terminate()
    try:
        process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        process.kill()


def accepted(answer: httpx.Response) -> bool:
    return answer.status_code == 200 and "<tns:Status>ACCEPTED</tns:Status>" in answer.text


def faulted(answer: httpx.Response, words: str) -> bool:
    return (
        answer.status_code == 500
        and "<faultcode>soap:Client</faultcode>" in answer.text
        and words in answer.text
    )


def stored(hub: Hub, body: bytes) -> bool:
    message_id = body.split(b"<t:MessageId>")[1].split(b"<")[0].decode()
    with hub.client("county") as county:
        return county.get("/api/v1/messages", params={"message_id": message_id}).status_code == 200


def test_a_lowered_soap_depth_refuses_a_call_the_default_accepts(hub: Hub, low_api: str) -> None:
    refused = decision_call(uid("XL-D"))
    answer = call(hub, low_api, refused)
    assert faulted(
        answer, f"the message nests XML elements deeper than {LOW_DEPTH} levels, the XML depth limit"
    ), answer.text
    assert not stored(hub, refused)
    assert accepted(call(hub, hub.url, decision_call(uid("XL-D")))), "the default limit reads it"


def test_a_lowered_soap_node_limit_refuses_a_call_the_default_accepts(hub: Hub, low_api: str) -> None:
    # An approval is 5 levels deep (within the lowered depth) but holds over 100 nodes.
    refused = approval_call(new_business_id())
    answer = call(hub, low_api, refused)
    assert faulted(answer, f"the message holds more than {LOW_NODES} XML elements and attributes"), (
        answer.text
    )
    assert not stored(hub, refused)
    assert accepted(call(hub, hub.url, approval_call(new_business_id())))


@pytest.fixture(scope="module")
def low_files(hub: Hub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A `hub files` process on a data directory of its own, with both XML limits lowered."""
    data = tmp_path_factory.mktemp("xmllimitsdata")
    limits = {"HUB_MAX_XML_DEPTH": "3", "HUB_MAX_XML_NODES": str(LOW_NODES)}
    with adapter(hub, data, data.parent / "xml-limits-files.log", **limits) as process:
        yield data
        assert process.poll() is None, "the file adapter with lowered limits stopped"


def approval_batch(provider: str) -> bytes:
    record = f"<ProviderApproval>{approval_fields('', provider)}</ProviderApproval>"
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<ProviderApprovalBatch xmlns="{FILE_NS}">\n'
        f"{record}\n</ProviderApprovalBatch>\n"
    ).encode()


def test_lowered_limits_refuse_batch_files_the_defaults_accept(hub: Hub, low_files: Path) -> None:
    cases = {
        # Root, record, Client, Hetu: four levels, over the lowered three.
        "deep": (batch(granted(uid("XL-F"))), "the record on line 3 nests XML elements deeper than 3 levels"),
        # Root, record, ServiceCode: three levels, within; 150 service codes: over 100 nodes.
        "many": (approval_batch(new_business_id()), f"more than {LOW_NODES} XML elements and attributes"),
    }
    for name, (content, words) in cases.items():
        receipt = receipt_of(put(low_files, "county", f"{name}.xml", content))
        assert words in (receipt.get("error") or ""), (name, receipt)
        assert (receipt["records"], receipt["accepted"], receipt["messages"]) == (0, 0, []), (name, receipt)
    for name, content in {
        "deep": batch(granted(uid("XL-F"))),
        "many": approval_batch(new_business_id()),
    }.items():
        receipt = receipt_of(drop(hub, "county", f"xml-limits-{name}-{uid('f')}.xml", content))
        assert (receipt["records"], receipt["accepted"], receipt.get("error")) == (1, 1, None), (
            name,
            receipt,
        )


def test_the_hub_is_healthy_after_it(hub: Hub, low_api: str) -> None:
    for url in (hub.url, low_api):
        assert httpx.get(f"{url}/health/ready", timeout=10).status_code == 200
