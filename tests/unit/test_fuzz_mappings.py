"""Fuzzing the mappings with hypothesis (a bounded number of examples, part of `make test`):
whatever a sender sends, `parse_message`, the CSV reader and the XML batch reader either give a
message or raise the hub's own error, and every error names a field of what was sent (a dotted
path into the message, a CSV column, a SOAP element path) in plain words, never a HETU."""

from __future__ import annotations

import io
import re
from copy import deepcopy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from psop_hub.hub.errors import FieldError, ValidationFailed
from psop_hub.hub.privacy import HETU_SHAPE
from psop_hub.mappings.canonical import MESSAGE_TYPES, Envelope, parse_message
from psop_hub.mappings.csvfiles import Layout, read_records
from psop_hub.mappings.records import UnreadableFile
from psop_hub.mappings.xmlbatch import read_batch
from tests.messages import (
    HETU,
    amended,
    approval,
    assigned,
    cancelled,
    corrected,
    delivery,
    ended,
    envelope,
    granted,
    placed,
    revoked,
)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SAMPLES = [
    granted("V-1"),
    assigned("V-1"),
    amended("V-1", 2, quantity="20"),
    revoked("V-1", 3),
    delivery("V-1", "2.5"),
    placed("O-1"),
    ended("O-1", 2),
    corrected("ev-1", 2, "3"),
    cancelled("ev-1", 3),
    approval(service_codes=["KH01", "KH02"]),
    envelope(
        "payment.confirmed",
        {"settlement_id": "PS-1", "paid_date": "2026-12-01", "amount": "10.00", "reference": "1232"},
    ),
]
ENVELOPE_KEYS = {"message_id", "type", "sent_at", "correlation_id", "payload"}

# JSON as a decoder gives it: any nesting of objects, lists, strings, numbers, booleans and null.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
# Values that are near misses of the real ones: the formats the contract's fields take.
tricky_strings = st.sampled_from(
    [
        "",
        " ",
        "1e5",
        "9" * 400,
        "0.001",
        "-1",
        "NaN",
        "2026-02-30",
        "2026-13-01",
        "0000-01-01",
        "2026-11-01T25:00:00+02:00",
        "131052-308U",
        "131052-308t",
        "010199A123?",
        "2077474-1",
        "\u202e",
        "\x00",
        "'; DROP TABLE vouchers; --",
        "<script>alert(1)</script>",
        "V-é",
        "hour",
        "x" * 300,
    ]
) | st.text(max_size=30)


def check_errors(errors: list[FieldError], sent: Any) -> None:
    assert errors, "ValidationFailed without errors"
    for error in errors:
        assert isinstance(error.field, str) and isinstance(error.message, str)
        assert error.message.strip(), error
        assert HETU_SHAPE.search(error.message) is None, error
        if error.field and isinstance(sent, dict):
            # The first step of the path is an envelope field or one of the keys sent (a long
            # or dotted unknown key is shown by its beginning).
            top = error.field.split(".", 1)[0]
            assert top in ENVELOPE_KEYS or any(str(k).startswith(top) for k in sent), (error, list(sent))


def parse(raw: Any) -> Envelope | None:
    try:
        return parse_message(raw)
    except ValidationFailed as exc:
        check_errors(exc.errors, raw)
        return None


@FUZZ
@given(raw=json_values)
def test_any_json_value_is_a_message_or_a_validation_error(raw: Any) -> None:
    parse(raw)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn) -> tuple[dict[str, Any], tuple[Any, ...]]:
    """A valid message of every type with one value replaced, or one key removed or added."""
    raw = deepcopy(draw(st.sampled_from(SAMPLES)))
    path = draw(st.sampled_from(_paths(raw)))
    parent: Any = raw
    for step in path[:-1]:
        parent = parent[step]
    action = draw(st.sampled_from(["replace", "delete", "add"]))
    if action == "delete" and isinstance(parent, dict):
        del parent[path[-1]]
    elif action == "add" and isinstance(parent, dict):
        parent[draw(st.text(min_size=1, max_size=12))] = draw(json_values)
    else:
        parent[path[-1]] = draw(tricky_strings | json_values)
    return raw, path


@FUZZ
@given(case=mutated())
def test_a_message_with_one_value_changed_names_the_field_if_it_is_refused(
    case: tuple[dict[str, Any], tuple[Any, ...]],
) -> None:
    raw, _ = case
    envelope = parse(raw)
    if envelope is not None:
        # What was accepted is a message of a known type whose canonical form reads back the same.
        assert envelope.type in MESSAGE_TYPES
        assert parse_message(envelope.envelope_json()) == envelope


@FUZZ
@given(body=st.binary(max_size=2000), layout=st.sampled_from(list(Layout)))
def test_any_bytes_after_a_csv_header_are_records_or_an_unreadable_file(body: bytes, layout: Layout) -> None:
    for content in (body, layout.header.encode() + b"\r\n" + body):
        try:
            found, records = read_records(io.BytesIO(content), provider="1572860-0", max_records=50)
            for record in records:
                if not record.valid:
                    check_errors(record.errors, {c: 1 for c in found.columns})
        except UnreadableFile as exc:
            assert exc.reason.strip()
            assert HETU_SHAPE.search(exc.reason) is None or HETU_SHAPE.search(content.decode("latin-1"))


RECORD = (
    '<VoucherDecisionBatch xmlns="urn:psop-hub:file:v1" xmlns:v="urn:psop-hub:soap:v1">'
    "<v:VoucherDecision><v:DecisionType>GRANTED</v:DecisionType><v:VoucherNumber>V-1</v:VoucherNumber>"
    "<v:Organiser>2077474-0</v:Organiser><v:DecisionDate>2026-11-01</v:DecisionDate>"
    f"<v:Client><v:Hetu>{HETU}</v:Hetu><v:HomeMunicipality>853</v:HomeMunicipality></v:Client>"
    "<v:Service><v:Code>KH01</v:Code><v:Name>Kotihoito</v:Name></v:Service><v:Unit>hour</v:Unit>"
    "<v:UnitValue>25.00</v:UnitValue><v:Quantity>40</v:Quantity><v:ValidFrom>2026-11-01</v:ValidFrom>"
    "<v:ValidTo>2027-10-31</v:ValidTo></v:VoucherDecision></VoucherDecisionBatch>"
)
ELEMENT_PATH = re.compile(r"[^/\s]+(/[^/\s]+)*")  # element names: VoucherDecision/Client/Hetu


@st.composite
def xml_mutations(draw: st.DrawFn) -> bytes:
    """The valid batch with a span cut out, or replaced by hostile or random text."""
    text = RECORD
    start = draw(st.integers(0, len(text)))
    end = draw(st.integers(start, min(len(text), start + 40)))
    filler = draw(
        st.sampled_from(["", "&xxe;", "<!DOCTYPE x>", "<a>", "</v:Unit>", "\x00", "]]>", "1e5", "<v:Extra/>"])
        | st.text(max_size=10)
    )
    return (text[:start] + filler + text[end:]).encode("utf-8", errors="surrogatepass")


@FUZZ
@given(content=xml_mutations())
def test_any_damage_to_an_xml_batch_is_a_rejected_record_or_an_unreadable_file(content: bytes) -> None:
    try:
        _, records = read_batch(io.BytesIO(content), max_records=50, max_nodes=1000)
        for record in records:
            for error in record.errors:
                assert error.message.strip(), error
                assert HETU_SHAPE.search(error.message) is None, error
                assert ELEMENT_PATH.fullmatch(error.field) or error.field == "", error
    except UnreadableFile as exc:
        assert exc.reason.strip()
        assert HETU not in exc.reason
