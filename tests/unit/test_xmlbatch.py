"""Unit tests of the file-drop XML batch reader: records, errors, unreadable files, streaming."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest

from psop_hub.hub.errors import Unreadable
from psop_hub.mappings.records import Record, UnreadableFile, record_message_id
from psop_hub.mappings.xmlbatch import read_batch

FILE_NS = "urn:psop-hub:file:v1"
SOAP_NS = "urn:psop-hub:soap:v1"
ORGANISER = "2077474-0"
HETU = "131052-308T"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def granted(number: str, p: str = "v:", **extra: str) -> str:
    """A GRANTED VoucherDecision record, its elements written with prefix `p` ("" = default namespace)."""
    fields = {
        "DecisionType": "GRANTED",
        "VoucherNumber": number,
        "Organiser": ORGANISER,
        "DecisionDate": "2026-11-01",
        "Client": f"<{p}Hetu>{HETU}</{p}Hetu><{p}HomeMunicipality>179</{p}HomeMunicipality>",
        "Service": f"<{p}Code>KH01</{p}Code><{p}Name>Säännöllinen kotihoito</{p}Name>",
        "Unit": "hour",
        "UnitValue": "25.00",
        "Quantity": "40",
        "ValidFrom": "2026-11-01",
        "ValidTo": "2027-10-31",
    }
    head = {k: extra.pop(k) for k in ("MessageId", "SentAt") if k in extra}
    fields = {**head, **fields, **extra}
    inner = "".join(f"<{p}{k}>{v}</{p}{k}>" for k, v in fields.items())
    return f"<{p}VoucherDecision>{inner}</{p}VoucherDecision>"


def batch(*records: str, root: str = "VoucherDecisionBatch") -> bytes:
    """A batch file declaring the file namespace as default and the SOAP namespace as `v:`."""
    body = "\n".join(records)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{FILE_NS}" xmlns:v="{SOAP_NS}">\n'
        f"{body}\n</{root}>\n"
    ).encode()


def read(data: bytes) -> tuple[str, list[Record]]:
    name, records = read_batch(io.BytesIO(data))
    return name, list(records)


def unreadable(data: bytes) -> str:
    with pytest.raises(UnreadableFile) as caught:
        read_batch(io.BytesIO(data))
    assert isinstance(caught.value, Unreadable)  # one "cannot be read" error for bodies and files
    return caught.value.reason


def test_soap_namespace_records_become_messages() -> None:
    name, records = read(batch(granted("V-1"), granted("V-2")))
    assert name == "VoucherDecision"
    assert [(r.index, r.line, r.valid) for r in records] == [(1, 3, True), (2, 4, True)]
    message = records[0].message
    assert message is not None and message["type"] == "voucher.granted"
    assert message["payload"]["client"] == {"hetu": HETU, "home_municipality": "179"}
    assert "sent_at" not in message


def test_stamped_messages_have_the_file_derived_id_and_the_time() -> None:
    _, records = read(batch(granted("V-1", MessageId="oma-1"), granted("V-2", SentAt="2026-11-02T08:00:00Z")))
    first, second = (r.stamped("ab" * 32, NOW) for r in records)
    assert first is not None and second is not None
    assert first.message_id == record_message_id("ab" * 32, 1)
    assert first.correlation_id == "oma-1"  # the record's own MessageId is kept as the correlation id
    assert first.sent_at == NOW
    assert second.message_id == record_message_id("ab" * 32, 2)
    assert second.sent_at == datetime(2026, 11, 2, 8, 0, tzinfo=UTC)  # its own time is kept


def test_invalid_records_are_listed_with_soap_element_paths() -> None:
    bad_hetu = granted("V-2").replace(HETU, "131052-308U")
    bad_value = granted("V-3").replace("<v:UnitValue>25.00<", "<v:UnitValue>abc<")
    _, records = read(batch(granted("V-1"), bad_hetu, bad_value))
    assert [r.valid for r in records] == [True, False, False]
    assert [(e.field, e.message) for e in records[1].errors] == [
        ("VoucherDecision/Client/Hetu", "has a wrong check character")
    ]
    assert records[2].errors[0].field == "VoucherDecision/UnitValue"
    assert records[1].stamped("ab" * 32, NOW) is None
    assert "131052-308U" not in repr(records[1].errors)


def test_records_of_another_kind_or_namespace_are_listed_not_skipped() -> None:
    other = granted("V-2", p="o:").replace(
        "<o:VoucherDecision>", '<o:VoucherDecision xmlns:o="urn:example:o">'
    )
    order = "<v:ServiceOrder><v:OrderType>ENDED</v:OrderType></v:ServiceOrder>"
    _, records = read(batch(granted("V-1"), other, order))
    assert [(r.index, r.valid) for r in records] == [(1, True), (2, False), (3, False)]
    assert "unexpected element {urn:example:o}VoucherDecision" in records[1].errors[0].message
    assert records[2].errors[0].field == "ServiceOrder"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"<VoucherDecisionBatch xmlns='urn:psop-hub:file:v1'><v:VoucherDecision>", ["well-formed"]),
        (batch(granted("V-1"))[:-30], ["well-formed"]),  # cut short: refused before any record
        (b"<?xml version='1.0'?><Invoice/>", ["holds no records"]),
        (b"<?xml version='1.0'?><Invoice><Row/></Invoice>", ["unknown root", "VoucherDecisionBatch"]),
        (f"<VoucherDecisionBatch xmlns='{FILE_NS}'/>".encode(), ["holds no records"]),
        (b'<!DOCTYPE x [<!ENTITY e "e">]>' + batch(granted("V-1")).split(b"\n", 1)[1], ["DTD"]),
        (b"", ["well-formed"]),
    ],
)
def test_unreadable_files_say_why(data: bytes, words: list[str]) -> None:
    reason = unreadable(data)
    for word in words:
        assert word in reason


def test_the_stream_is_read_from_where_it_is_and_left_open() -> None:
    stream = io.BytesIO(b"junk" + batch(granted("V-1")))
    stream.seek(4)
    _, records = read_batch(stream)
    assert [r.valid for r in records] == [True]
    assert not stream.closed


def test_a_large_file_is_streamed(tmp_path: Path) -> None:
    """Memory stays flat: each record is cleared once read, in both passes. lxml's tree lives in
    libxml2, out of tracemalloc's sight, so the process's resident memory is what is watched."""
    path = tmp_path / "paatokset.xml"
    count = 20_000
    with path.open("wb") as out:
        out.write(
            f'<VoucherDecisionBatch xmlns="{FILE_NS}" xmlns:v="{SOAP_NS}" xmlns:o="urn:example:o">\n'.encode()
        )
        for start in range(0, count, 1000):
            # Every thousandth record is validated; the others (another namespace) are listed
            # without validation, so that the test reads many records quickly.
            chunk = [
                granted(f"V-{n}") if n % 1000 == 0 else granted(f"V-{n}", p="o:")
                for n in range(start, start + 1000)
            ]
            out.write(("\n".join(chunk) + "\n").encode())
        out.write(b"</VoucherDecisionBatch>\n")
    size = path.stat().st_size
    assert size > 10_000_000
    process = psutil.Process()
    before = process.memory_info().rss
    peak, valid, last = before, 0, None
    with path.open("rb") as stream:
        _, records = read_batch(stream)
        peak = max(peak, process.memory_info().rss)
        for record in records:
            valid += record.valid
            last = record
            if record.index % 500 == 0:
                peak = max(peak, process.memory_info().rss)
    assert valid == count // 1000
    assert last is not None and (last.index, last.line) == (count, count + 1)
    # Held whole, the tree takes several times the file's size; streamed, a few records' worth.
    assert peak - before < size // 4, f"grew by {peak - before} bytes for a {size}-byte file: not streamed"
