"""Limits on untrusted XML (issue 13): elements and attributes read, schema errors reported."""

from __future__ import annotations

import time

import pytest

from psop_hub.mappings.xml import MAX_XML_ERRORS, XmlRejected, parse_xml, schema_errors

NS = "urn:psop-hub:soap:v1"


def operation(attributes: int) -> bytes:
    noise = " ".join(f'a{i}="x"' for i in range(attributes))
    return (
        f'<SubmitVoucherDecision xmlns="{NS}"><VoucherDecision {noise}><MessageId>m</MessageId>'
        "</VoucherDecision></SubmitVoucherDecision>"
    ).encode()


def test_a_document_of_too_many_attributes_is_refused() -> None:
    with pytest.raises(XmlRejected, match="more than 1000 XML elements and attributes"):
        parse_xml(operation(2000), max_nodes=1000)


def test_a_document_within_the_limit_is_read() -> None:
    assert parse_xml(operation(10), max_nodes=1000) is not None


def test_thousands_of_disallowed_attributes_are_reported_capped_and_counted_quickly() -> None:
    root = parse_xml(operation(5000), max_nodes=20_000)
    started = time.monotonic()
    errors = schema_errors(root)
    assert time.monotonic() - started < 10
    assert len(errors) == MAX_XML_ERRORS + 1
    last = errors[-1]
    assert last.field == "VoucherDecision"
    assert "more problems with the schema, not listed" in last.message
    assert int(last.message.split()[0]) >= 5000 - MAX_XML_ERRORS
