"""CSV files of the file drop (INTERFACES §5): ERP payments and provider deliveries, Finnish style.

`read_records` detects the encoding from the first 64 KiB (UTF-8 with or without a BOM, otherwise
ISO-8859-15), recognises the layout by the header line, then streams the file one record at a time:
each record's Finnish formats (decimal comma, `1 234,50 €`, `DD.MM.YYYY`) become canonical strings
and the payload is validated with `parse_message`, errors named by CSV column. It yields the same
`Record` as the XML batch reader (`mappings/records.py`). Nothing is read but the binary stream
given, and nothing is written.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from enum import Enum
from typing import Any, BinaryIO

from psop_hub.hub.errors import FieldError, ValidationFailed
from psop_hub.mappings.canonical import parse_message
from psop_hub.mappings.records import PLACEHOLDER_ID, Record, UnreadableFile

__all__ = [
    "HEAD_BYTES",
    "LATIN9",
    "MAX_LINE_CHARS",
    "UTF8",
    "Layout",
    "detect_encoding",
    "finnish_date",
    "finnish_decimal",
    "read_records",
]

HEAD_BYTES = 64 * 1024  # how much is read to detect the encoding and refuse binary content
MAX_LINE_CHARS = 64 * 1024  # a longer physical line is reported, not held in memory
UTF8 = "utf-8-sig"  # decodes UTF-8 and drops a leading BOM if there is one
LATIN9 = "iso-8859-15"
_BINARY_SHARE = 0.1  # share of control characters above which the head counts as binary data
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_NUMBER = re.compile(r"(-?)([0-9]{1,3}(?:[ \u00a0\u202f][0-9]{3})+|[0-9]+)(?:[,.]([0-9]+))?")
_GROUP_SEPARATORS = str.maketrans("", "", " \u00a0\u202f")
_DATE = re.compile(r"([0-9]{1,2})\.([0-9]{1,2})\.([0-9]{4})")
_SENT_AT = "2026-01-01T00:00:00+00:00"
_MONEY_COLUMNS = frozenset({"amount", "price"})
_QUANTITY_COLUMNS = frozenset({"quantity"})
_DATE_COLUMNS = frozenset({"paid_date", "service_date"})


class Layout(Enum):
    """The two CSV layouts of the file drop, told apart by the header line."""

    PAYMENTS = "payments"
    DELIVERIES = "deliveries"

    @property
    def columns(self) -> tuple[str, ...]:
        """The header's column names, in order."""
        return _COLUMNS[self]

    @property
    def message_type(self) -> str:
        """The canonical message type each record becomes."""
        return _TYPES[self]

    @property
    def header(self) -> str:
        """The header line as a sender writes it."""
        return ";".join(_COLUMNS[self])


_COLUMNS: dict[Layout, tuple[str, ...]] = {
    Layout.PAYMENTS: ("settlement_id", "paid_date", "amount", "reference"),
    Layout.DELIVERIES: (
        "event_id",
        "organiser",
        "voucher_number",
        "order_number",
        "service_date",
        "quantity",
        "unit",
        "price",
    ),
}
_TYPES: dict[Layout, str] = {Layout.PAYMENTS: "payment.confirmed", Layout.DELIVERIES: "delivery.reported"}
_EXPECTED = (
    f'expected a ";" separated CSV file in UTF-8 or ISO-8859-15 whose first line is the header '
    f'"{Layout.PAYMENTS.header}" (ERP payments) or "{Layout.DELIVERIES.header}" (provider deliveries)'
)


def detect_encoding(head: bytes, *, complete: bool = True) -> str:
    """UTF8 if the file's first bytes start with a BOM or decode as UTF-8, else LATIN9."""
    if head.startswith(codecs.BOM_UTF8):
        return UTF8
    try:
        # An incremental decoder lets a character cut at the end of the head pass when more follows.
        codecs.getincrementaldecoder("utf-8")().decode(head, final=complete)
    except UnicodeDecodeError:
        return LATIN9
    return UTF8


def finnish_decimal(text: str, *, euro: bool = False) -> str | None:
    """`1 234,50` (groups by space, NBSP or narrow NBSP; ` €` allowed with `euro`) as "1234.50", else None."""
    value = text.strip()
    if euro and value.endswith("€"):
        value = value[:-1].rstrip()
    match = _NUMBER.fullmatch(value)
    if match is None:
        return None
    sign, whole, fraction = match.groups()
    whole = whole.translate(_GROUP_SEPARATORS)
    return f"{sign}{whole}.{fraction}" if fraction is not None else f"{sign}{whole}"


def finnish_date(text: str) -> str | None:
    """`DD.MM.YYYY` or `D.M.YYYY` as `YYYY-MM-DD` (the calendar is checked later); None if not that shape."""
    match = _DATE.fullmatch(text.strip())
    if match is None:
        return None
    day, month, year = match.groups()
    return f"{year}-{int(month):02d}-{int(day):02d}"


def read_records(
    stream: BinaryIO, *, provider: str | None, max_records: int | None = None
) -> tuple[Layout, Iterator[Record]]:
    """Read the header (UnreadableFile if the file cannot be read), then stream the records lazily.

    With `max_records` the stream must be seekable: a first pass counts the records (cheaply, not
    validated), and a file of more is refused before any record is yielded, so that nothing of
    it is stored.
    """
    start = stream.tell() if max_records is not None else 0
    head, complete = _read_head(stream)
    if not head:
        raise UnreadableFile(f"the file is empty; {_EXPECTED}")
    encoding = detect_encoding(head, complete=complete)
    _refuse_binary(head, encoding)
    rows, lines = _rows(head, stream, encoding)
    layout = _read_header(rows, lines)
    if layout is Layout.DELIVERIES and not provider:
        raise UnreadableFile(
            "delivery reports can only be sent by a provider, and this sender has no provider business ID"
        )
    if max_records is not None:
        counted = sum(1 for _ in _records(rows, lines, layout, provider, utf8=False, count_only=True))
        if counted > max_records:
            raise UnreadableFile(
                f"the file holds {counted} records, more than the {max_records} one file may hold: "
                "split it into several files"
            )
        stream.seek(start)
        head, _ = _read_head(stream)
        rows, lines = _rows(head, stream, encoding)
        _read_header(rows, lines)
    return layout, _records(rows, lines, layout, provider, utf8=encoding == UTF8)


def _rows(head: bytes, stream: BinaryIO, encoding: str) -> tuple[Iterator[list[str]], _Lines]:
    text = io.TextIOWrapper(
        io.BufferedReader(_Rejoined(head, stream)), encoding=encoding, errors="replace", newline=""
    )
    lines = _Lines(text)
    return csv.reader(lines, delimiter=";", quotechar='"'), lines


def _read_head(stream: BinaryIO) -> tuple[bytes, bool]:
    # read() may return less than asked before the end (pipes, sockets): loop until full or at the end.
    chunks: list[bytes] = []
    size = 0
    while size < HEAD_BYTES:
        chunk = stream.read(HEAD_BYTES - size)
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False


def _refuse_binary(head: bytes, encoding: str) -> None:
    if b"\x00" in head:
        raise UnreadableFile(
            f"the file contains NUL bytes, so it is binary data or UTF-16 text, not a CSV file; {_EXPECTED}"
        )
    text = head.decode(encoding, errors="replace")
    if len(_CONTROLS.findall(text)) > _BINARY_SHARE * len(text):
        raise UnreadableFile(f"the file is binary data, not a CSV text file; {_EXPECTED}")


class _Rejoined(io.RawIOBase):
    """The head already read, then the rest of the caller's stream (which is never closed here)."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        if self._head:
            size = min(len(target), len(self._head))
            target[:size] = self._head[:size]
            self._head = self._head[size:]
            return size
        data = self._rest.read(len(target))
        target[: len(data)] = data
        return len(data)


class _Lines:
    """The text's physical lines for the csv reader: counted, and over-long ones skipped and noted."""

    def __init__(self, text: io.TextIOWrapper) -> None:
        self._text = text
        self.number = 0  # physical lines handed out so far
        self.overlong: list[int] = []  # line numbers cut since the caller last cleared the list

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self._text.readline(MAX_LINE_CHARS + 1)
        if not line:
            raise StopIteration
        self.number += 1
        if len(line) > MAX_LINE_CHARS and not line.endswith(("\n", "\r")):
            while (rest := self._text.readline(MAX_LINE_CHARS)) and not rest.endswith(("\n", "\r")):
                pass
            self.overlong.append(self.number)
            return "\n"
        return line


def _blank(row: list[str]) -> bool:
    # `;;;` rows, which spreadsheets write for formatted but empty rows, count as blank lines too.
    return all(not cell.strip() for cell in row)


def _header_names(row: list[str]) -> list[str]:
    names = [cell.strip().strip("\ufeff").strip().lower() for cell in row]
    while names and not names[-1]:
        names.pop()
    return names


def _read_header(rows: Iterator[list[str]], lines: _Lines) -> Layout:
    while True:
        try:
            row = next(rows)
        except StopIteration:
            raise UnreadableFile(f"the file has no header line; {_EXPECTED}") from None
        except csv.Error:
            raise UnreadableFile(f"the first line is not a well-formed CSV header; {_EXPECTED}") from None
        if lines.overlong:
            raise UnreadableFile(f"the first line is longer than {MAX_LINE_CHARS} characters; {_EXPECTED}")
        if not _blank(row):
            break
    names = _header_names(row)
    for layout in Layout:
        if tuple(names) == layout.columns:
            return layout
    if len(names) == 1 and tuple(names[0].replace(" ", "").split(",")) in _COLUMNS.values():
        raise UnreadableFile(f'the columns are separated by "," but must be separated by ";"; {_EXPECTED}')
    raise UnreadableFile(f"the first line is not a known header; {_EXPECTED}")


def _records(
    rows: Iterator[list[str]],
    lines: _Lines,
    layout: Layout,
    provider: str | None,
    *,
    utf8: bool,
    count_only: bool = False,
) -> Iterator[Record]:
    index = 0
    while True:
        start = lines.number + 1
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:
            # The reader starts afresh on the next line, so one broken record does not end the file.
            lines.overlong.clear()
            index += 1
            yield Record(index, start, None, [FieldError("", f"the record is not well-formed CSV ({exc})")])
            continue
        overlong = list(lines.overlong)
        lines.overlong.clear()
        if not overlong and _blank(row):
            continue
        index += 1
        if overlong:
            message = f"line {overlong[0]} is longer than {MAX_LINE_CHARS} characters"
            yield Record(index, start, None, [FieldError("", message)])
            continue
        if count_only:  # the counting pass: no validation
            yield Record(index, start, None)
            continue
        yield _record(index, start, row, layout, provider, utf8=utf8)


def _record(
    index: int, line: int, row: list[str], layout: Layout, provider: str | None, *, utf8: bool
) -> Record:
    columns = layout.columns
    cells = [cell.strip() for cell in row]
    while len(cells) > len(columns) and not cells[-1]:
        cells.pop()
    if len(cells) != len(columns):
        return Record(
            index, line, None, [FieldError("", f"expected {len(columns)} columns, found {len(cells)}")]
        )
    errors: list[FieldError] = []
    payload: dict[str, str] = {}
    for column, cell in zip(columns, cells, strict=True):
        if utf8 and "\ufffd" in cell:
            errors.append(FieldError(column, "contains bytes that are not valid UTF-8"))
        elif "\x00" in cell:  # past the head (which refuses the file for one): this record only
            errors.append(FieldError(column, "contains a NUL byte"))
            continue
        if cell:  # an empty cell means the field is absent
            payload[column] = _canonical_value(column, cell)
    if layout is Layout.DELIVERIES and provider is not None:
        payload["provider"] = provider
    raw = {"message_id": PLACEHOLDER_ID, "type": layout.message_type, "sent_at": _SENT_AT, "payload": payload}
    try:
        envelope = parse_message(raw)
    except ValidationFailed as exc:
        flagged = {error.field for error in errors}
        errors.extend(e for e in (_column_error(error) for error in exc.errors) if e.field not in flagged)
        order = {name: position for position, name in enumerate(("", *columns))}
        return Record(index, line, None, sorted(errors, key=lambda e: order.get(e.field, len(order))))
    if errors:
        return Record(index, line, None, errors)
    return Record(
        index, line, {"type": layout.message_type, "payload": envelope.payload_json()}, [], envelope
    )


def _canonical_value(column: str, cell: str) -> str:
    # A cell that is not in the Finnish form is passed on as it is, for the canonical rules to judge.
    converted: str | None = None
    if column in _MONEY_COLUMNS:
        converted = finnish_decimal(cell, euro=True)
    elif column in _QUANTITY_COLUMNS:
        converted = finnish_decimal(cell)
    elif column in _DATE_COLUMNS:
        converted = finnish_date(cell)
    return cell if converted is None else converted


def _column_error(error: FieldError) -> FieldError:
    """A canonical error (`payload.amount`) renamed to its CSV column and reworded for the CSV formats."""
    name = error.field
    if name == "payload":
        name = ""
    elif name.startswith("payload."):
        name = name.removeprefix("payload.")
    message = error.message
    if message.startswith("must be a decimal string"):
        example = "1 234,50" if name in _MONEY_COLUMNS else "2,5"
        message = f"must be a number with at most two decimals, such as {example}"
    elif message == "must be a date in the form YYYY-MM-DD":
        message = "must be a date in the form DD.MM.YYYY"
    return FieldError(name, message)
