"""The file-batch schema: every batch root the adapter reads is declared, and records validate."""

from __future__ import annotations

from lxml import etree

from psop_hub.mappings.xml import FILE_XSD_FILE as FILE_XSD
from psop_hub.mappings.xmlbatch import BATCHES, FILE_NS

XSD = "http://www.w3.org/2001/XMLSchema"


def test_every_batch_root_is_declared_with_its_record() -> None:
    tree = etree.parse(str(FILE_XSD), etree.XMLParser(resolve_entities=False, no_network=True))
    declared = {
        e.get("name"): e.find(f".//{{{XSD}}}sequence/{{{XSD}}}element").get("ref")  # type: ignore[union-attr]
        for e in tree.getroot().findall(f"{{{XSD}}}element")
    }
    for root, record in BATCHES.items():
        name = etree.QName(root)
        assert name.namespace == FILE_NS
        assert declared[name.localname] == f"v:{record}"
    assert "ProviderApprovalBatch" in declared


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
