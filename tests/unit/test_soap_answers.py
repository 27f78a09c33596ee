"""The answer to a SOAP submit is written as text (api/soap.py): the same bytes lxml writes for
the SubmitResult element in the envelope, for every operation, both statuses and any message id
the contract lets through (escaped where XML needs it)."""

from __future__ import annotations

import uuid

import pytest
from lxml import etree

from psop_hub.api.soap import SOAP_ENV, SUBMIT_OPERATIONS, T, _wrap, submit_response
from psop_hub.mappings.soap import NS, SOAP11

IDS = ["m-1", "A&B <c> \"d\" 'e'", "tilaus-ÄÖÅ-äöå-€", "]]>", "x" * 100]


def built_by_lxml(name: str, hub_id: uuid.UUID, message_id: str, duplicate: bool) -> bytes:
    result = T.SubmitResult(
        T.HubId(str(hub_id)), T.MessageId(message_id), T.Status("DUPLICATE" if duplicate else "ACCEPTED")
    )
    envelope = SOAP_ENV.Envelope(SOAP_ENV.Body(_wrap(f"{name}Response", result)))
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(SUBMIT_OPERATIONS))
@pytest.mark.parametrize("message_id", IDS)
@pytest.mark.parametrize("duplicate", [False, True])
def test_the_submit_answer_is_what_lxml_writes(name: str, message_id: str, duplicate: bool) -> None:
    hub_id = uuid.uuid4()
    answer = submit_response(name, hub_id, message_id, duplicate)
    assert answer.body == built_by_lxml(name, hub_id, message_id, duplicate)
    assert answer.media_type == "text/xml; charset=utf-8"
    # And it reads back as the values it was given.
    path = f"{{{SOAP11}}}Body/{{{NS}}}{name}Response/{{{NS}}}SubmitResult"
    result = etree.fromstring(answer.body).find(path)
    assert result is not None
    assert [child.text for child in result] == [
        str(hub_id),
        message_id,
        "DUPLICATE" if duplicate else "ACCEPTED",
    ]
