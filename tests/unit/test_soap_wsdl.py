"""The SOAP contract files: the WSDL and XSD parse, the XSD compiles, zeep loads the WSDL offline."""

from __future__ import annotations

import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import zeep
from lxml import etree
from zeep.transports import Transport

import psop_hub.mappings

WSDL_DIR = Path(psop_hub.mappings.__file__).resolve().parent / "wsdl"
WSDL = WSDL_DIR / "psop-hub-v1.wsdl"
XSD = WSDL_DIR / "psop-hub-v1.xsd"

TNS = "urn:psop-hub:soap:v1"
NS = {
    "wsdl": "http://schemas.xmlsoap.org/wsdl/",
    "soap": "http://schemas.xmlsoap.org/wsdl/soap/",
    "xsd": "http://www.w3.org/2001/XMLSchema",
}
OPERATIONS = {"SubmitVoucherDecision", "SubmitServiceOrder", "SubmitProviderApproval", "GetMessageStatus"}
SAFE = etree.XMLParser(resolve_entities=False, no_network=True)


def parse(path: Path) -> etree._ElementTree:
    """Parse a contract file without entities or network access."""
    return etree.parse(str(path), SAFE)


class RepositoryTransport(Transport):
    """A zeep transport that answers the WSDL's relative import `v1?xsd` with the repository XSD.

    From a file:// URL the import resolves to `file:///.../wsdl/v1?xsd`, a file that does not exist:
    the hub serves it at `/soap/v1?xsd`."""

    def load(self, url: str) -> bytes:
        parts = urlparse(url)
        if parts.scheme == "file" and parts.path.endswith("/v1") and parts.query == "xsd":
            return XSD.read_bytes()
        return bytes(super().load(url))


def offline_client() -> zeep.Client:
    """zeep loading the repository WSDL from the file system."""
    return zeep.Client(WSDL.as_uri(), transport=RepositoryTransport())


def test_wsdl_and_xsd_are_well_formed() -> None:
    wsdl = parse(WSDL).getroot()
    xsd = parse(XSD).getroot()
    assert wsdl.tag == f"{{{NS['wsdl']}}}definitions"
    assert wsdl.get("targetNamespace") == TNS
    assert xsd.tag == f"{{{NS['xsd']}}}schema"
    assert xsd.get("targetNamespace") == TNS
    assert xsd.get("elementFormDefault") == "qualified"


def test_xsd_compiles_as_xml_schema() -> None:
    schema = etree.XMLSchema(parse(XSD))
    error = etree.fromstring(f'<Error xmlns="{TNS}" field="VoucherDecision/Quantity">too small</Error>')
    assert schema.validate(error), schema.error_log


def test_every_xsd_element_is_typed() -> None:
    untyped = [
        element.get("name") or element.get("ref")
        for element in parse(XSD).iter(f"{{{NS['xsd']}}}element")
        if element.get("type") is None
        and element.get("ref") is None
        and element.find("xsd:complexType", NS) is None
        and element.find("xsd:simpleType", NS) is None
    ]
    assert untyped == []


def test_wsdl_imports_the_xsd_relative_to_the_endpoint() -> None:
    imports = parse(WSDL).findall("wsdl:types/xsd:schema/xsd:import", NS)
    assert [(i.get("namespace"), i.get("schemaLocation")) for i in imports] == [(TNS, "v1?xsd")]


def test_every_provider_approval_element_is_typed_and_documented() -> None:
    xsd = parse(XSD).getroot()
    approval = xsd.find("xsd:complexType[@name='ProviderApproval']", NS)
    assert approval is not None
    elements = approval.findall("xsd:sequence/xsd:element", NS)
    names = [e.get("name") for e in elements]
    expected = ["MessageId", "SentAt", "CorrelationId", "Organiser", "Provider", "Version", "ServiceCode"]
    assert names == [*expected, "ValidFrom", "ValidTo"]
    for element in elements:
        assert element.get("type"), element.get("name")
        assert (element.findtext("xsd:annotation/xsd:documentation", namespaces=NS) or "").strip()
    occurs = {e.get("name"): (e.get("minOccurs", "1"), e.get("maxOccurs", "1")) for e in elements}
    assert occurs["ServiceCode"] == ("0", "unbounded")
    assert occurs["Version"] == ("1", "1") and occurs["ValidFrom"] == ("1", "1")
    assert occurs["ValidTo"] == ("0", "1") and occurs["SentAt"] == ("0", "1")
    for name in ("SubmitProviderApproval", "SubmitProviderApprovalResponse", "ProviderApproval"):
        declared = xsd.find(f"xsd:element[@name='{name}']", NS)
        assert declared is not None
        assert (declared.findtext("xsd:annotation/xsd:documentation", namespaces=NS) or "").strip()


def test_port_type_has_exactly_the_four_operations() -> None:
    wsdl = parse(WSDL)
    port_types = wsdl.findall("wsdl:portType", NS)
    assert len(port_types) == 1
    names = [op.get("name") for op in port_types[0].findall("wsdl:operation", NS)]
    assert sorted(names) == sorted(OPERATIONS)


def test_binding_is_soap11_document_literal_with_a_soap_action_per_operation() -> None:
    wsdl = parse(WSDL)
    binding = wsdl.find("wsdl:binding", NS)
    assert binding is not None
    soap_binding = binding.find("soap:binding", NS)
    assert soap_binding is not None
    assert soap_binding.get("style") == "document"
    assert soap_binding.get("transport") == "http://schemas.xmlsoap.org/soap/http"
    actions = {}
    for operation in binding.findall("wsdl:operation", NS):
        soap_operation = operation.find("soap:operation", NS)
        assert soap_operation is not None
        actions[operation.get("name")] = soap_operation.get("soapAction")
        for body in operation.findall("*/soap:body", NS):
            assert body.get("use") == "literal"
    assert actions == {name: f"{TNS}#{name}" for name in OPERATIONS}


def test_wrapped_messages_name_elements_of_the_xsd() -> None:
    declared = {e.get("name") for e in parse(XSD).getroot().findall("xsd:element", NS)}
    parts = parse(WSDL).findall("wsdl:message/wsdl:part", NS)
    assert len(parts) == 2 * len(OPERATIONS)
    for part in parts:
        assert part.get("name") == "parameters"
        prefix, _, local = (part.get("element") or "").partition(":")
        assert prefix == "tns" and local in declared
    assert {f"{op}{suffix}" for op in OPERATIONS for suffix in ("", "Response")} <= declared


def test_zeep_loads_the_wsdl_from_the_file_system() -> None:
    client = offline_client()
    services = client.wsdl.services
    assert list(services) == ["PsopHubService"]
    port = services["PsopHubService"].ports["PsopHubSoap11"]
    assert type(port.binding).__name__ == "Soap11Binding"
    assert set(port.binding._operations) == OPERATIONS
    for name in OPERATIONS:
        assert callable(getattr(client.service, name))


def test_zeep_loads_the_wsdl_copied_next_to_a_file_named_like_the_import(tmp_path: Path) -> None:
    # what a partner does who saves both files to disk: the XSD under the name the import uses
    shutil.copy(WSDL, tmp_path / "psop-hub-v1.wsdl")
    shutil.copy(XSD, tmp_path / "v1?xsd")
    client = zeep.Client(str(tmp_path / "psop-hub-v1.wsdl"))
    port = client.wsdl.services["PsopHubService"].ports["PsopHubSoap11"]
    assert set(port.binding._operations) == OPERATIONS


def _body_of(client: zeep.Client, operation: str, **kwargs: Any) -> etree._Element:
    envelope = client.create_message(client.service, operation, **kwargs)
    body = envelope.find("{http://schemas.xmlsoap.org/soap/envelope/}Body")
    assert body is not None
    return body[0]


@pytest.mark.parametrize(
    ("operation", "kwargs"),
    [
        (
            "SubmitVoucherDecision",
            {
                "VoucherDecision": {
                    "MessageId": "m-1",
                    "DecisionType": "GRANTED",
                    "VoucherNumber": "PS-2026-000123",
                    "Organiser": "2077474-0",
                    "DecisionDate": date(2026, 11, 1),
                    "Client": {"Hetu": "131052-308T", "HomeMunicipality": "091"},
                    "Service": {"Code": "KH01", "Name": "Säännöllinen kotihoito"},
                    "Unit": "hour",
                    "UnitValue": Decimal("25.00"),
                    "Quantity": Decimal("40"),
                    "ValidFrom": date(2026, 11, 1),
                    "ValidTo": date(2027, 12, 31),
                }
            },
        ),
        (
            "SubmitServiceOrder",
            {
                "ServiceOrder": {
                    "MessageId": "m-2",
                    "OrderType": "ENDED",
                    "OrderNumber": "OP-2026-77",
                    "Organiser": "2077474-0",
                    "EndDate": date(2026, 12, 31),
                    "Version": 2,
                }
            },
        ),
        (
            "SubmitProviderApproval",
            {
                "ProviderApproval": {
                    "MessageId": "m-3",
                    "Organiser": "2077474-0",
                    "Provider": "1572860-0",
                    "Version": 1,
                    "ServiceCode": ["KH01", "KH02"],
                    "ValidFrom": date(2026, 1, 1),
                    "ValidTo": date(2026, 12, 31),
                }
            },
        ),
        (
            "SubmitProviderApproval",
            {
                "ProviderApproval": {
                    "MessageId": "m-4",
                    "Organiser": "2077474-0",
                    "Provider": "1572860-0",
                    "Version": 2,
                    "ValidFrom": date(2026, 1, 1),
                }
            },
        ),
        ("GetMessageStatus", {"HubId": "8f0c1a52-8d0e-4a4e-9a53-2b3f2f1c0e11"}),
    ],
)
def test_what_zeep_sends_is_valid_against_the_xsd(operation: str, kwargs: dict[str, Any]) -> None:
    schema = etree.XMLSchema(parse(XSD))
    request = _body_of(offline_client(), operation, **kwargs)
    assert request.tag == f"{{{TNS}}}{operation}"
    assert schema.validate(request), schema.error_log
