"""SOAP validation under concurrency: every answer is the answer the same request gets alone.

One compiled XML Schema shared by the request threads mixed one call's errors into another
client's fault, varied the number of errors, and let messages with a disallowed attribute through.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lxml import etree

from tests.e2e.conftest import Hub
from tests.e2e.test_soap import (
    SAFE,
    SOAP11,
    TNS,
    decision_envelope,
    elements,
    envelope,
    fault_of,
    granted,
    post,
)
from tests.messages import HETU, OTHER_ORGANISER, uid

BAD_HETUS = {"county": "131052-308U", "other-county": "010190Y123N"}


def request(hub: Hub, who: str, kind: str, n: int) -> bytes:
    """A SubmitVoucherDecision of `who`: valid, with wrong values (each client its own), or with an
    attribute the schema does not allow."""
    fields: dict[str, Any] = granted(f"{who}-{kind}-{n}-{uid('V')}", message_id=uid(f"{who}-{kind}"))
    if who == "other-county":
        fields["Organiser"] = OTHER_ORGANISER
    if kind == "invalid":
        fields["Client"] = {"Hetu": BAD_HETUS[who], "HomeMunicipality": f"{who[:2]}{n}"}
        fields["UnitValue"] = f"{who}-value"
        fields["Quantity"] = "-4"
    content = decision_envelope(fields, (who, hub.secrets[who]))
    if kind == "attribute":
        content = content.replace(b"<VoucherDecision>", b'<VoucherDecision colour="red">', 1)
    return content


def answer(hub: Hub, content: bytes) -> tuple[str, Any]:
    """('ACCEPTED', None) or ('FAULT', sorted errors) for one call."""
    response = post(hub, content)
    if response.status_code == 200:
        root = etree.fromstring(response.content, SAFE)
        status = root.findtext(
            f"{{{SOAP11}}}Body/{{{TNS}}}SubmitVoucherDecisionResponse/{{{TNS}}}SubmitResult/{{{TNS}}}Status"
        )
        return str(status), None
    fault = fault_of(response)
    return "FAULT", (fault.code, sorted(fault.errors))


def test_concurrent_valid_and_invalid_calls_from_two_clients_get_their_own_answers(hub: Hub) -> None:
    cases = [
        (who, kind, n) for n in range(12) for who in BAD_HETUS for kind in ("valid", "invalid", "attribute")
    ]
    contents = {case: request(hub, *case) for case in cases}
    # Alone: invalid and attribute requests store nothing, so they can be sent again; a valid one
    # is checked alone on a twin with its own ids.
    alone = {case: answer(hub, contents[case]) for case in cases if case[1] != "valid"}
    assert all(a[0] == "FAULT" for a in alone.values())
    assert answer(hub, request(hub, "county", "valid", 99)) == ("ACCEPTED", None)
    for (who, kind, _), (_, (code, errors)) in alone.items():
        assert code == "soap:Client"
        text = " ".join(f"{f} {m}" for f, m in errors)
        other = next(o for o in BAD_HETUS if o != who)
        assert other[:2] + "-" not in text and BAD_HETUS[other][:6] not in text
        if kind == "attribute":
            assert "colour" in text, errors

    with ThreadPoolExecutor(16) as pool:
        together = list(pool.map(lambda case: (case, answer(hub, contents[case])), cases * 3))
    wrong = []
    for case, got in together:
        expected = ("ACCEPTED", None) if case[1] == "valid" else alone[case]
        # A valid request sent again is a duplicate of its first, concurrent, copy.
        if case[1] == "valid" and got == ("DUPLICATE", None):
            continue
        if got != expected:
            wrong.append((case, got, expected))
    assert not wrong, wrong[:3]


def test_concurrent_file_style_records_validate_alone(hub: Hub) -> None:
    """The same schema serves file records: a record validated from many threads at once."""
    from psop_hub.mappings.xml import schema_errors

    record = etree.fromstring(
        f'<VoucherDecision xmlns="{TNS}" colour="red">'.encode()
        + elements({k: v for k, v in granted("V-x").items()}).encode()
        + b"</VoucherDecision>"
    )
    clean = etree.fromstring(
        f'<VoucherDecision xmlns="{TNS}">'.encode()
        + elements(granted("V-y")).encode()
        + b"</VoucherDecision>"
    )
    first = schema_errors(record, "VoucherDecision")
    assert first and "colour" in first[0].message
    assert schema_errors(clean, "VoucherDecision") == []
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(lambda i: schema_errors(record if i % 2 else clean, "VoucherDecision"), range(400))
        )
    assert all(r == (first if i % 2 else []) for i, r in enumerate(results))


def test_a_hetu_as_message_id_or_hub_id_is_masked_in_faults(hub: Hub) -> None:
    credentials = ("county", hub.secrets["county"])
    for spelling in (HETU, HETU.lower()):
        fields = granted(uid("V"), message_id=f"paatos_{spelling}_{uid('m')}")
        assert post(hub, decision_envelope(fields, credentials)).status_code == 200
        fields["Quantity"] = "99"
        conflict = post(hub, decision_envelope(fields, credentials))
        text = conflict.text
        assert fault_of(conflict).code == "soap:Client"
        assert spelling.upper() not in text.upper() and f"{HETU[:6]}-****" in text, text
        status = post(
            hub,
            envelope("GetMessageStatus", f"<HubId>{spelling}</HubId>", credentials),
            {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{TNS}#GetMessageStatus"'},
        )
        assert spelling.upper() not in status.text.upper() and f"{HETU[:6]}-****" in status.text, status.text
