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


@pytest.mark.parametrize("limit", [3, 100, 1000])
def test_a_document_at_the_node_limit_is_read_and_one_node_more_is_refused(limit: int) -> None:
    # operation(k): three elements and k attributes (namespace declarations are not attributes).
    assert parse_xml(operation(limit - 3), max_nodes=limit) is not None
    with pytest.raises(XmlRejected, match=f"more than {limit} XML elements and attributes"):
        parse_xml(operation(limit - 2), max_nodes=limit)
    siblings = f'<r xmlns="{NS}">' + "<e/>" * (limit - 1) + "</r>"
    assert parse_xml(siblings.encode(), max_nodes=limit) is not None
    with pytest.raises(XmlRejected, match=f"more than {limit} XML elements and attributes"):
        parse_xml((f'<r xmlns="{NS}">' + "<e/>" * limit + "</r>").encode(), max_nodes=limit)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
@pytest.mark.parametrize("limit", [100, 1000])
def test_the_densest_documents_one_node_over_the_limit_are_refused(limit: int, encoding: str) -> None:
    # A body too short to hold more than the limit is not counted (parse_xml): the shortest
    # documents that do hold one node more must still be counted and refused.
    elements = "<r>" + "<e/>" * limit + "</r>"
    attributes = "<r" + "".join(f" {chr(0x4E00 + i)}=''" for i in range(limit)) + "/>"
    for text in (elements, attributes):
        body = text.encode(encoding)
        with pytest.raises(XmlRejected, match=f"more than {limit} XML elements and attributes"):
            parse_xml(body, max_nodes=limit)
        assert parse_xml(body, max_nodes=limit + 1) is not None


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


# --- the depth limit (HUB_MAX_XML_DEPTH), the same for SOAP bodies and batch files -----------


def nested(levels: int) -> bytes:
    """A document of exactly `levels` levels of elements (the root is level 1)."""
    return (f'<r xmlns="{NS}">' + "<e>" * (levels - 1) + "</e>" * (levels - 1) + "</r>").encode()


@pytest.mark.parametrize("limit", [3, 6, 32])
def test_a_document_at_the_depth_limit_is_read_and_one_level_more_is_refused(limit: int) -> None:
    assert parse_xml(nested(limit), max_depth=limit) is not None
    with pytest.raises(XmlRejected, match=f"deeper than {limit} levels, the XML depth limit"):
        parse_xml(nested(limit + 1), max_depth=limit)


def test_a_soap_call_needs_six_levels() -> None:
    call = (
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"'
        b' xmlns:t="urn:psop-hub:soap:v1"><soap:Body><t:SubmitVoucherDecision><t:VoucherDecision>'
        b"<t:Client><t:Hetu>131052-308T</t:Hetu></t:Client></t:VoucherDecision></t:SubmitVoucherDecision>"
        b"</soap:Body></soap:Envelope>"
    )
    assert parse_xml(call, max_depth=6) is not None
    with pytest.raises(XmlRejected, match="deeper than 5 levels"):
        parse_xml(call, max_depth=5)


def test_depth_and_node_limits_are_checked_together() -> None:
    wide_and_shallow = (f'<r xmlns="{NS}">' + "<e/>" * 500 + "</r>").encode()
    assert parse_xml(wide_and_shallow, max_nodes=1000, max_depth=4) is not None
    with pytest.raises(XmlRejected, match="more than 100 XML elements"):
        parse_xml(wide_and_shallow, max_nodes=100, max_depth=4)
    with pytest.raises(XmlRejected, match="deeper than 4 levels"):
        parse_xml(nested(40), max_nodes=1000, max_depth=4)
