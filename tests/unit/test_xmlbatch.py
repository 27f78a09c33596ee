"""Unit tests of the file-drop XML batch reader: records, errors, unreadable files, streaming."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest

from psop_hub.hub.errors import Unreadable
from psop_hub.mappings.records import Record, UnreadableFile, record_message_id
from psop_hub.mappings.xmlbatch import read_batch
from tests.messages import order_record

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


# --- the two forms: records in the file's default namespace or in the SOAP namespace ----------


def approval(provider: str, p: str = "") -> str:
    """A ProviderApproval record for two services."""
    return (
        f"<{p}ProviderApproval><{p}Organiser>{ORGANISER}</{p}Organiser><{p}Provider>{provider}</{p}Provider>"
        f"<{p}Version>1</{p}Version><{p}ServiceCode>KH01</{p}ServiceCode><{p}ServiceCode>SA01</{p}ServiceCode>"
        f"<{p}ValidFrom>2026-01-01</{p}ValidFrom></{p}ProviderApproval>"
    )


def messages(records: list[Record]) -> list[dict[str, object] | None]:
    return [r.message for r in records]


@pytest.mark.parametrize(
    ("root", "record"),
    [
        ("VoucherDecisionBatch", lambda p: granted("V-1", p=p, MessageId="oma-1")),
        ("ServiceOrderBatch", lambda p: order_record("O-1", p=p)),
        ("ProviderApprovalBatch", lambda p: approval("1572860-0", p=p)),
    ],
)
def test_default_namespace_records_read_as_their_soap_twins(root: str, record: Callable[[str], str]) -> None:
    default_name, default = read(batch(record(""), record(""), root=root))
    soap_name, soap = read(batch(record("v:"), record("v:"), root=root))
    assert default_name == soap_name == root.removesuffix("Batch")
    assert all(r.valid for r in default), [r.errors for r in default]
    assert messages(default) == messages(soap)
    assert [r.stamped("cd" * 32, NOW) for r in default] == [r.stamped("cd" * 32, NOW) for r in soap]


def test_the_usual_form_with_one_xmlns_on_the_root() -> None:
    data = (
        f'<VoucherDecisionBatch xmlns="{FILE_NS}">\n{granted("V-1", p="")}\n{granted("V-2", p="")}\n'
        "</VoucherDecisionBatch>"
    ).encode()
    _, records = read(data)
    assert [(r.index, r.line, r.valid) for r in records] == [(1, 2, True), (2, 3, True)]


def test_default_namespace_errors_are_named_by_soap_element_paths() -> None:
    bad_hetu = granted("V-2", p="").replace(HETU, "131052-308U")
    bad_value = granted("V-3", p="").replace("<UnitValue>25.00<", "<UnitValue>abc<")
    missing = granted("V-4", p="").replace("<Organiser>2077474-0</Organiser>", "")
    extra = granted("V-5", p="").replace("<Unit>hour</Unit>", "<Unit>hour</Unit><Colour>red</Colour>")
    _, default = read(batch(bad_hetu, bad_value, missing, extra))
    _, soap = read(
        batch(*(r.replace("<", "<v:").replace("<v:/", "</v:") for r in (bad_hetu, bad_value, missing, extra)))
    )
    assert [r.valid for r in default] == [False] * 4
    assert [(e.field, e.message) for e in default[0].errors] == [
        ("VoucherDecision/Client/Hetu", "has a wrong check character")
    ]
    assert default[1].errors[0].field == "VoucherDecision/UnitValue"
    assert default[2].errors[0].field == "VoucherDecision/Organiser"
    assert default[3].errors[0].field.startswith("VoucherDecision/")
    # the same findings, word for word, as for the record in the SOAP namespace
    assert [r.errors for r in default] == [r.errors for r in soap]


def test_mixed_files_and_a_third_namespace() -> None:
    third = granted("V-4", p="o:").replace(
        "<o:VoucherDecision>", '<o:VoucherDecision xmlns:o="urn:example:o">'
    )
    _, records = read(batch(granted("V-1", p=""), granted("V-2"), granted("V-3", p=""), third))
    assert [(r.index, r.valid) for r in records] == [(1, True), (2, True), (3, True), (4, False)]
    assert [r.message["payload"]["voucher_number"] for r in records[:3] if r.message] == ["V-1", "V-2", "V-3"]
    error = records[3].errors[0]
    assert error.field == "VoucherDecision"
    assert "unexpected element {urn:example:o}VoucherDecision" in error.message
    assert FILE_NS in error.message and SOAP_NS in error.message


def test_a_file_namespace_record_of_another_kind_is_listed() -> None:
    _, records = read(batch(granted("V-1", p=""), order_record("O-1", p="")))
    assert [r.valid for r in records] == [True, False]
    assert records[1].errors[0].field == "ServiceOrder"
    assert "unexpected element" in records[1].errors[0].message


def test_more_records_than_the_limit_are_refused_before_any_record() -> None:
    data = batch(*(granted(f"V-{n}") for n in range(4)))
    assert len(list(read_batch(io.BytesIO(data), max_records=4)[1])) == 4
    with pytest.raises(UnreadableFile, match="more than 3 records"):
        read_batch(io.BytesIO(data), max_records=3)


@pytest.mark.parametrize(
    ("record", "where"),
    [
        (granted("V-1", Extra="<v:X/>" * 200), "the record on line 4"),
        (
            granted("V-1").replace("<v:Unit>", "<v:Unit " + " ".join(f'a{i}="1"' for i in range(200)) + ">"),
            "line 4",
        ),
    ],
)
def test_a_record_of_more_nodes_than_the_limit_is_refused(record: str, where: str) -> None:
    with pytest.raises(UnreadableFile) as caught:
        read_batch(io.BytesIO(batch(granted("V-0"), record)), max_nodes=150)
    assert where in caught.value.reason and "more than 150 XML elements and attributes" in caught.value.reason
    assert len(list(read_batch(io.BytesIO(batch(granted("V-0"))), max_nodes=150)[1])) == 1


@pytest.mark.parametrize(
    "prolog",
    [
        '<!DOCTYPE b [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
        '<!DOCTYPE b [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p"> %p;]>',
        '<!DOCTYPE b [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>',
        '<!DOCTYPE VoucherDecisionBatch SYSTEM "http://127.0.0.1:9/batch.dtd">',
    ],
)
def test_entities_and_dtds_are_refused_unexpanded(prolog: str) -> None:
    body = batch(granted("&xxe;&b;")).split(b"\n", 1)[1]
    reason = unreadable(b'<?xml version="1.0"?>\n' + prolog.encode() + b"\n" + body)
    assert "DTD" in reason and "root:" not in reason


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_a_dtd_is_refused_in_utf16_too(encoding: str) -> None:
    # A billion laughs: libxml2 refuses its amplification before iterparse hands over the root
    # (lxml 6.2), so the DTD is found in the bytes before the parser.
    body = batch(granted("&l9;")).split(b"\n", 1)[1].decode()
    entities = "".join(f'<!ENTITY l{n} "{("&l" + str(n - 1) + ";") * 10}">' for n in range(1, 10))
    prolog = f'<!DOCTYPE b [<!ENTITY l0 "lol">{entities}]>'
    bom = "\ufeff"
    reason = unreadable((bom + '<?xml version="1.0" encoding="UTF-16"?>\n' + prolog + body).encode(encoding))
    assert reason == "DTDs and entity declarations are not allowed in a batch file"


def test_libxml2s_own_depth_limit_met_first_is_named_as_the_hubs() -> None:
    # 300 levels in the first few hundred bytes: lxml 6.2's iterparse hands over none of the
    # chunk in which libxml2 refuses its 257th level (6.1 handed over the 33rd first); either
    # way the hub's own limit is what the refusal names.
    with pytest.raises(UnreadableFile) as caught:
        read_batch(io.BytesIO(batch(granted("V-1", Extra="<v:X>" * 300 + "</v:X>" * 300))), max_depth=32)
    assert re.fullmatch(
        r"the (record|element) on line \d+ nests XML elements deeper than 32 levels, the XML depth limit",
        caught.value.reason,
    ), caught.value.reason


def test_deeper_than_libxml2_allows_is_not_well_formed() -> None:
    reason = unreadable(batch(granted("V-1", Extra="<v:X>" * 300 + "</v:X>" * 300)))
    assert "well-formed" in reason and "depth" in reason.lower()


def test_a_batch_file_deeper_than_its_depth_limit_is_refused_naming_the_record() -> None:
    # Root, record, Client, Hetu: four levels; a limit of four reads it, three refuses it.
    data = batch(granted("V-1"), granted("V-2"))
    name, records = read_batch(io.BytesIO(data), max_depth=4)
    assert name == "VoucherDecision" and len(list(records)) == 2
    with pytest.raises(UnreadableFile) as caught:
        read_batch(io.BytesIO(data), max_depth=3)
    assert (
        caught.value.reason
        == "the record on line 3 nests XML elements deeper than 3 levels, the XML depth limit"
    )
    deep = batch(granted("V-1"), granted("V-2", Extra="<v:X>" * 30 + "</v:X>" * 30))
    with pytest.raises(UnreadableFile, match="the record on line 4 nests XML elements deeper than 32 levels"):
        read_batch(io.BytesIO(deep), max_depth=32)
