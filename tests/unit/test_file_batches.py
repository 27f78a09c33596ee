"""The file-batch schema: every batch root the adapter reads is declared, and records validate."""

from __future__ import annotations

import pytest
from lxml import etree

from psop_hub.mappings.xml import FILE_XSD_FILE as FILE_XSD
from psop_hub.mappings.xmlbatch import BATCHES, FILE_NS

XSD = "http://www.w3.org/2001/XMLSchema"


def test_every_batch_root_is_declared_with_its_record_in_both_namespaces() -> None:
    tree = etree.parse(str(FILE_XSD), etree.XMLParser(resolve_entities=False, no_network=True))
    declared = {
        e.get("name"): {r.get("ref") for r in e.iterfind(f".//{{{XSD}}}element")}
        for e in tree.getroot().findall(f"{{{XSD}}}element")
    }
    for root, record in BATCHES.items():
        name = etree.QName(root)
        assert name.namespace == FILE_NS
        assert declared[name.localname] == {f"v:{record}", f"f:{record}"}
        assert record in declared  # the record in the file's own namespace is declared too
    assert "ProviderApprovalBatch" in declared


def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(FILE_XSD)))


DECISION = (
    "<{p}VoucherDecision><{p}DecisionType>ASSIGNED</{p}DecisionType><{p}VoucherNumber>V-1</{p}VoucherNumber>"
    "<{p}Organiser>2077474-0</{p}Organiser><{p}Provider>1572860-0</{p}Provider></{p}VoucherDecision>"
)


@pytest.mark.parametrize(
    "records",
    [
        [DECISION.format(p="")],  # the default-namespace form
        [DECISION.format(p="v:")],  # the SOAP-namespace form
        [DECISION.format(p=""), DECISION.format(p="v:"), DECISION.format(p="")],  # mixed
    ],
)
def test_both_record_forms_validate(records: list[str]) -> None:
    document = etree.fromstring(
        f'<VoucherDecisionBatch xmlns="{FILE_NS}" xmlns:v="urn:psop-hub:soap:v1">{"".join(records)}'
        "</VoucherDecisionBatch>".encode()
    )
    xsd = schema()
    assert xsd.validate(document), xsd.error_log


def test_a_record_in_another_namespace_or_of_another_kind_does_not_validate() -> None:
    xsd = schema()
    for record in (
        DECISION.format(p="o:").replace("<o:VoucherDecision>", '<o:VoucherDecision xmlns:o="urn:example:o">'),
        "<ServiceOrder><OrderType>ENDED</OrderType></ServiceOrder>",
    ):
        document = etree.fromstring(
            f'<VoucherDecisionBatch xmlns="{FILE_NS}">{record}</VoucherDecisionBatch>'.encode()
        )
        assert not xsd.validate(document), record


def test_a_provider_approval_batch_validates() -> None:
    schema = etree.XMLSchema(etree.parse(str(FILE_XSD)))
    document = etree.fromstring(
        f'<ProviderApprovalBatch xmlns="{FILE_NS}" xmlns:v="urn:psop-hub:soap:v1">'
        "<v:ProviderApproval><v:Organiser>2077474-0</v:Organiser><v:Provider>1572860-0</v:Provider>"
        "<v:Version>2</v:Version><v:ServiceCode>KH01</v:ServiceCode><v:ServiceCode>SA01</v:ServiceCode>"
        "<v:ValidFrom>2026-01-01</v:ValidFrom><v:ValidTo>2026-12-31</v:ValidTo></v:ProviderApproval>"
        "<v:ProviderApproval><v:Organiser>2077474-0</v:Organiser><v:Provider>0116297-6</v:Provider>"
        "<v:Version>1</v:Version><v:ValidFrom>2026-01-01</v:ValidFrom></v:ProviderApproval>"
        "</ProviderApprovalBatch>".encode()
    )
    assert schema.validate(document), schema.error_log
