"""Unit tests of the file-drop CSV reader: encodings, Finnish formats, layouts, errors, streaming."""

from __future__ import annotations

import io
import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from psop_hub.hub.privacy import HETU_SHAPE as HETU_PATTERN
from psop_hub.mappings.csvfiles import (
    HEAD_BYTES,
    LATIN9,
    MAX_LINE_CHARS,
    UTF8,
    Layout,
    detect_encoding,
    finnish_date,
    finnish_decimal,
    read_records,
)
from psop_hub.mappings.records import Record, UnreadableFile, record_message_id

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
PROVIDER = "1572860-0"
PAYMENTS_HEADER = "settlement_id;paid_date;amount;reference"
DELIVERIES_HEADER = "event_id;organiser;voucher_number;order_number;service_date;quantity;unit;price"


def read(data: bytes, provider: str | None = PROVIDER) -> tuple[Layout, list[Record]]:
    layout, records = read_records(io.BytesIO(data), provider=provider)
    return layout, list(records)


def unreadable(data: bytes, provider: str | None = PROVIDER) -> str:
    with pytest.raises(UnreadableFile) as caught:
        read_records(io.BytesIO(data), provider=provider)
    return caught.value.reason


def errors_of(record: Record) -> list[list[str]]:
    return [[error.field, error.message] for error in record.errors]


# --- the samples -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["maksut_latin9", "toteumat_bom"])
def test_sample_gives_the_expected_records(name: str) -> None:
    expected: dict[str, Any] = json.loads((SAMPLES / f"{name}.expected.json").read_text("utf-8"))
    with (SAMPLES / f"{name}.csv").open("rb") as stream:
        layout, iterator = read_records(stream, provider=expected.get("provider"))
        records = list(iterator)
    assert layout.value == expected["layout"]
    assert len(records) == expected["records"]
    assert [r.index for r in records] == list(range(1, len(records) + 1))
    assert [r.index for r in records if r.valid] == expected["valid"]
    assert {str(r.index): errors_of(r) for r in records if not r.valid} == expected["errors"]
    assert {str(r.index): r.message for r in records if r.valid} == expected["messages"]
    assert all(r.errors == [] for r in records if r.valid)


def test_samples_are_in_the_encodings_they_claim() -> None:
    latin9 = (SAMPLES / "maksut_latin9.csv").read_bytes()
    bom = (SAMPLES / "toteumat_bom.csv").read_bytes()
    assert detect_encoding(latin9) == LATIN9 and b"\r\n" in latin9 and b"\xa4" in latin9  # € in Latin-9
    assert detect_encoding(bom) == UTF8 and bom.startswith(b"\xef\xbb\xbf") and b"\r" not in bom


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("unknown_header.csv", ["not a known header", PAYMENTS_HEADER, DELIVERIES_HEADER]),
        ("empty.csv", ["empty", PAYMENTS_HEADER, DELIVERIES_HEADER]),
        ("binary.csv", ["NUL bytes", "binary"]),
    ],
)
def test_unreadable_samples_say_why(name: str, words: list[str]) -> None:
    with (SAMPLES / name).open("rb") as stream, pytest.raises(UnreadableFile) as caught:
        read_records(stream, provider=PROVIDER)
    for word in words:
        assert word in caught.value.reason


# --- encodings and line ends -------------------------------------------------------------------


def test_the_same_file_in_every_encoding_and_line_end_gives_identical_records() -> None:
    text = (SAMPLES / "toteumat_bom.csv").read_bytes().decode("utf-8-sig")
    variants = []
    for newline in ("\n", "\r\n"):
        body = text.replace("\n", newline)
        for data in (body.encode("utf-8"), b"\xef\xbb\xbf" + body.encode("utf-8"), body.encode(LATIN9)):
            variants.append(read(data))
    assert variants[0][0] is Layout.DELIVERIES
    assert all(variant == variants[0] for variant in variants)
    assert variants[0][1][0].message is not None
    assert variants[0][1][0].message["payload"]["event_id"] == "KOTIHOITO-JYVÄSKYLÄ-000101"


@pytest.mark.parametrize("encoding", ["utf-8", LATIN9])
def test_finnish_letters_and_euro_survive_either_encoding(encoding: str) -> None:
    text = f"{PAYMENTS_HEADER}\nHämäläinen-Öljy-€1;1.4.2026;1 234,50 €;1232\n"
    data = text.encode(encoding)
    assert data.decode(detect_encoding(data)) == text
    _, records = read(data)
    assert records[0].message is not None
    assert records[0].message["payload"]["settlement_id"] == "Hämäläinen-Öljy-€1"
    assert records[0].message["payload"]["amount"] == "1234.50"


def test_detect_encoding() -> None:
    assert detect_encoding("Hämäläinen".encode()) == UTF8
    assert detect_encoding(b"\xef\xbb\xbfabc") == UTF8
    assert detect_encoding("Hämäläinen".encode(LATIN9)) == LATIN9
    cut = "ä".encode()[:1]  # a character cut at the end of the head is fine when more follows
    assert detect_encoding(b"abc" + cut, complete=False) == UTF8
    assert detect_encoding(b"abc" + cut, complete=True) == LATIN9


def test_invalid_utf8_after_the_head_is_a_record_error_not_a_crash() -> None:
    good = "E-{};2077474-0;PS-2026-0001;;02.03.2026;1;hour;\n"
    lines = [DELIVERIES_HEADER + "\n"] + [good.format(n) for n in range(HEAD_BYTES // 40)]
    data = "".join(lines).encode() + b"E-bad\xff;2077474-0;PS-2026-0001;;02.03.2026;1;hour;\n"
    data += good.format("last").encode()
    assert len(data) > HEAD_BYTES
    _, records = read(data)
    bad, last = records[-2], records[-1]
    assert errors_of(bad) == [["event_id", "contains bytes that are not valid UTF-8"]]
    assert bad.line == len(lines) + 1
    assert last.valid and all(r.valid for r in records[:-2])


# --- Finnish formats ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "euro", "expected"),
    [
        ("12,50", False, "12.50"),
        ("1 234,50", False, "1234.50"),
        ("1\u00a0234,50 €", True, "1234.50"),
        ("1\u202f234\u202f567,5\u00a0€", True, "1234567.5"),
        ("1234,50€", True, "1234.50"),
        (" 98 ", False, "98"),
        ("2.5", False, "2.5"),
        ("-45,00", True, "-45.00"),
        ("12 34,50", False, None),
        ("12,50 €", False, None),
        ("1,2,3", False, None),
        ("abc", False, None),
        ("", False, None),
    ],
)
def test_finnish_decimal(text: str, euro: bool, expected: str | None) -> None:
    assert finnish_decimal(text, euro=euro) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("02.03.2026", "2026-03-02"),
        ("2.3.2026", "2026-03-02"),
        ("31.02.2026", "2026-02-31"),
        ("2026-03-02", None),
    ],
)
def test_finnish_date(text: str, expected: str | None) -> None:
    assert finnish_date(text) == expected


def test_amount_with_nbsp_thousands_and_euro_becomes_canonical() -> None:
    data = f'{PAYMENTS_HEADER}\r\nS-1;15.04.2026;"1\u00a0234,50 €";1232\r\n'.encode()
    _, records = read(data)
    assert records[0].message == {
        "type": "payment.confirmed",
        "payload": {
            "settlement_id": "S-1",
            "paid_date": "2026-04-15",
            "amount": "1234.50",
            "reference": "1232",
        },
    }


def test_format_errors_are_worded_for_the_csv_formats() -> None:
    data = f"{PAYMENTS_HEADER}\nS-1;15/04/2026;12,505;1232\nS-2;1.4.2026;12 50;1232\n".encode()
    _, records = read(data)
    assert errors_of(records[0]) == [
        ["paid_date", "must be a date in the form DD.MM.YYYY"],
        ["amount", "must be a number with at most two decimals, such as 1 234,50"],
    ]
    assert errors_of(records[1]) == [
        ["amount", "must be a number with at most two decimals, such as 1 234,50"]
    ]


def test_empty_cells_are_absent_fields() -> None:
    row = "E-1;2077474-0;;OP-1;1.3.2026;2;hour;"
    _, records = read(f"{DELIVERIES_HEADER}\n{row}\n".encode())
    assert records[0].message is not None
    payload = records[0].message["payload"]
    assert "voucher_number" not in payload and "price" not in payload
    assert payload["provider"] == PROVIDER and payload["quantity"] == "2"
    _, records = read(f"{PAYMENTS_HEADER}\nS-1;;1,00;1232\n".encode())
    assert errors_of(records[0]) == [["paid_date", "is required"]]


# --- records and lines -------------------------------------------------------------------------


def test_blank_lines_are_skipped_and_lines_counted() -> None:
    text = (
        f"\n{PAYMENTS_HEADER}\n\nS-1;1.4.2026;1,00;1232\n;;;\n  \n"
        'S-2;1.4.2026;2,00;"1232"\n"S-\n3";1.4.2026;3,00;1232\nS-4;1.4.2026;4,00\n'
    )
    _, records = read(text.encode())
    assert [(r.index, r.line) for r in records] == [(1, 4), (2, 7), (3, 8), (4, 10)]
    assert [r.valid for r in records] == [True, True, False, False]
    assert errors_of(records[2]) == [["settlement_id", "must not contain control characters"]]
    assert errors_of(records[3]) == [["", "expected 4 columns, found 3"]]


def test_header_is_case_and_space_insensitive_and_trailing_empty_cells_are_ignored() -> None:
    text = (
        " Settlement_ID ; PAID_DATE;Amount;reference;;\r\n"
        "S-1;1.4.2026;1,00;1232;;\r\nS-2;1.4.2026;1,00;1232;x\r\n"
    )
    layout, records = read(text.encode())
    assert layout is Layout.PAYMENTS
    assert records[0].valid
    assert errors_of(records[1]) == [["", "expected 4 columns, found 5"]]


def test_an_overlong_line_is_reported_and_the_file_goes_on() -> None:
    text = f"{PAYMENTS_HEADER}\nS-1;" + "1" * (MAX_LINE_CHARS + 10) + "\nS-2;1.4.2026;1,00;1232\n"
    _, records = read(text.encode())
    assert errors_of(records[0]) == [["", f"line 2 is longer than {MAX_LINE_CHARS} characters"]]
    assert (records[1].index, records[1].line, records[1].valid) == (2, 3, True)


def test_an_unclosed_quote_is_reported_and_the_file_goes_on() -> None:
    text = f'{PAYMENTS_HEADER}\nS-1;"' + ("x" * 60_000 + "\n") * 3 + "S-2;1.4.2026;1,00;1232\n"
    _, records = read(text.encode())
    assert records[0].line == 2 and not records[0].valid
    assert records[0].errors[0].message.startswith("the record is not well-formed CSV")
    assert records[-1].valid and records[-1].line == 5


def test_a_slow_stream_gives_the_same_records_and_is_left_open() -> None:
    data = (SAMPLES / "toteumat_bom.csv").read_bytes()

    class Trickle(io.RawIOBase):
        def __init__(self) -> None:
            self.rest = data

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            chunk, self.rest = self.rest[:7], self.rest[7:]
            return chunk

    stream = Trickle()
    layout, records = read_records(stream, provider=PROVIDER)  # type: ignore[arg-type]
    assert (layout, list(records)) == read(data)
    assert not stream.closed


# --- file-level refusals -----------------------------------------------------------------------


def test_delivery_file_needs_a_provider_and_payments_ignore_it() -> None:
    reason = unreadable(f"{DELIVERIES_HEADER}\n".encode(), provider=None)
    assert "provider" in reason
    layout, records = read(f"{PAYMENTS_HEADER}\nS-1;1.4.2026;1,00;1232\n".encode(), provider="anything")
    assert layout is Layout.PAYMENTS and records[0].valid


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", ["empty"]),
        (b"\xef\xbb\xbf\r\n\r\n", ["no header line"]),
        (PAYMENTS_HEADER.replace(";", ",").encode() + b"\n", ['separated by ","', PAYMENTS_HEADER]),
        (PAYMENTS_HEADER.encode("utf-16"), ["NUL bytes", "UTF-16"]),
        (bytes(range(1, 32)) * 100, ["binary"]),
        (b"x" * (MAX_LINE_CHARS + 5), ["longer than"]),
        (b"settlement_id;paid_date;amount\n", ["not a known header", DELIVERIES_HEADER]),
    ],
)
def test_unreadable_files(data: bytes, words: list[str]) -> None:
    reason = unreadable(data)
    for word in words:
        assert word in reason


# --- privacy, ids, streaming -------------------------------------------------------------------


def test_no_error_message_repeats_a_hetu() -> None:
    hetu = "131052-308T"
    payments = f"{PAYMENTS_HEADER}\n{hetu};{hetu};{hetu};{hetu}\n{hetu};{hetu}\n"
    deliveries = f"{DELIVERIES_HEADER}\n" + ";".join([hetu] * 8) + "\n" + ";".join([hetu] * 9) + "\n"
    found = [error for data in (payments, deliveries) for r in read(data.encode())[1] for error in r.errors]
    assert len(found) > 5
    for error in found:
        assert not HETU_PATTERN.search(error.field) and not HETU_PATTERN.search(error.message)
    reason = unreadable(f"{hetu};{hetu}\n".encode())
    assert not HETU_PATTERN.search(reason)


def test_record_message_id() -> None:
    digest = "ab" * 32
    assert record_message_id(digest, 7) == f"file-{'ab' * 16}-7"
    assert len(record_message_id(digest, 10**12)) <= 100


def test_a_large_file_is_streamed(tmp_path: Path) -> None:
    path = tmp_path / "toteumat.csv"
    count = 25_000  # ~2 MB, four times the bound below: enough to tell streaming from reading whole
    with path.open("wb") as out:
        out.write(f"\ufeff{DELIVERIES_HEADER}\r\n".encode())
        for start in range(0, count, 1000):
            rows = (
                f"KOTIHOITO-JYVÄSKYLÄ-{n:07d};2077474-0;PS-2026-{n % 500:04d};;"
                f"{n % 28 + 1}.3.2026;1,5;hour;32,50\r\n"
                for n in range(start, start + 1000)
            )
            out.write("".join(rows).encode())
    assert path.stat().st_size > 1_900_000
    valid = 0
    last: Record | None = None
    tracemalloc.start()
    try:
        with path.open("rb") as stream:
            _, records = read_records(stream, provider=PROVIDER)
            for record in records:
                valid += record.valid
                last = record
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert valid == count
    assert last is not None and (last.index, last.line) == (count, count + 1)
    assert peak < 512 * 1024, f"peak {peak} bytes: the file was not streamed"


def test_more_records_than_the_limit_are_refused_before_any_record() -> None:
    header = "settlement_id;paid_date;amount;reference"
    rows = [header, *(f"PS-{n};20.11.2026;1,00;1232" for n in range(5)), ";;;", ""]
    data = "\r\n".join(rows).encode()
    _, records = read_records(io.BytesIO(data), provider=None, max_records=5)
    assert [r.index for r in records] == [1, 2, 3, 4, 5]  # blank lines are not records
    with pytest.raises(UnreadableFile, match="holds 5 records, more than the 4"):
        read_records(io.BytesIO(data), provider=None, max_records=4)


def test_a_nul_byte_past_the_head_rejects_its_record() -> None:
    header = "settlement_id;paid_date;amount;reference"
    data = (header + "\r\n" + ";;;\r\n" * 20_000 + "PS-1;20.11.2026;1\x0000;1232\r\n").encode()
    _, records = read(data, provider=None)
    (record,) = records
    assert [(e.field, e.message) for e in record.errors] == [("amount", "contains a NUL byte")]
