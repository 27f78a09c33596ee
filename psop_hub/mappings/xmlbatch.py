"""XML batch files of the file drop (INTERFACES §5): a VoucherDecisionBatch, ServiceOrderBatch or
ProviderApprovalBatch root (namespace urn:psop-hub:file:v1) with one record after another.

`read_batch` reads the stream twice. A first pass checks the whole file: well-formed XML, no DTD
(so no entities: no XXE, billion laughs or quadratic blowup), a known root, at least one record and
at most `max_records`, no record of more than `max_nodes` elements and attributes and no
element deeper than `max_depth` levels (the SOAP limits; libxml2 refuses more than 256 levels in
any case); otherwise it raises UnreadableFile before any record
is taken.
The second pass, lazily, yields one `Record` per child of the root, the same type the CSV reader
yields. Both passes use lxml's iterparse with the hardened configuration of `mappings/xml.py` and
clear each child of the root once it is handled, so memory stays flat however long the file.

A record is written in the file's namespace (the usual form: one `xmlns` on the root) or in the
SOAP namespace urn:psop-hub:soap:v1, in any mix. Either way it is validated against the SOAP
contract's type: a file-namespace record is copied into the SOAP namespace first, so the rules
have one home (the SOAP XSD) and error fields are SOAP element paths (`VoucherDecision/Client/Hetu`).
A child of any other name or namespace is listed as a rejected record, never skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from copy import deepcopy
from typing import Any, BinaryIO

from lxml import etree

from psop_hub.hub.errors import FieldError, ValidationFailed
from psop_hub.hub.privacy import mask_text
from psop_hub.mappings.records import PLACEHOLDER_ID, Record, UnreadableFile
from psop_hub.mappings.soap import NS, record_to_message
from psop_hub.mappings.xml import depth_text, iterparse

FILE_NS = "urn:psop-hub:file:v1"
# Each batch root and the record it holds.
BATCHES = {
    f"{{{FILE_NS}}}VoucherDecisionBatch": "VoucherDecision",
    f"{{{FILE_NS}}}ServiceOrderBatch": "ServiceOrder",
    f"{{{FILE_NS}}}ProviderApprovalBatch": "ProviderApproval",
}
RECORD_NAMESPACES = (FILE_NS, NS)
_ROOT_NAMES = ", ".join(etree.QName(tag).localname for tag in BATCHES)
_FILE_PREFIX = f"{{{FILE_NS}}}"


DTD_REFUSED = "DTDs and entity declarations are not allowed in a batch file"
# The bytes of a file searched for a DOCTYPE before it is parsed (one after a longer prolog is
# still refused, when the parser reaches the root), written in ASCII or UTF-16 either way round.
PROLOG_BYTES = 65536
_DOCTYPES = [
    re.compile(re.escape("<!DOCTYPE".encode(encoding)), re.IGNORECASE)
    for encoding in ("ascii", "utf-16-le", "utf-16-be")
]
_LIBXML2_DEPTH = "Excessive depth in document"


def read_batch(
    stream: BinaryIO,
    *,
    max_records: int | None = None,
    max_nodes: int | None = None,
    max_depth: int | None = None,
) -> tuple[str, Iterator[Record]]:
    """Check the whole file (UnreadableFile if it cannot be read, or holds more than `max_records`
    records, a record of more than `max_nodes` elements and attributes, or elements nested more
    than `max_depth` levels, the root being level 1), then stream its records lazily.

    Returns the record name (`VoucherDecision`, ...) and the records. The stream must be seekable:
    it is read to the end once before the records, then again from where it was.
    """
    start = stream.tell()
    record_name = _check(stream, max_records, max_nodes, max_depth)
    stream.seek(start)
    return record_name, (_record(index, element, record_name) for index, element in _children(stream))


def _top_level(
    stream: BinaryIO, max_nodes: int | None = None, max_depth: int | None = None
) -> Iterator[tuple[Any, Any]]:
    """(root, child) for every direct child of the root, streamed: each child is cleared and
    dropped after the caller is done with it, whatever its name, so memory stays flat. With
    `max_nodes`, a child (or the root's own attributes) of more elements and attributes is
    refused while it is read, before it is whole in memory; with `max_depth`, so is an element
    nested deeper."""
    depth = 0
    root = None
    nodes = 0  # elements and attributes of the child being read
    line = 0  # the line where that child starts
    for event, element in iterparse(stream):
        if event == "start":
            depth += 1
            if depth == 1:
                root = element
                # Any encoding, anywhere before the root: the parser saw the DOCTYPE, if any.
                if element.getroottree().docinfo.doctype:
                    raise UnreadableFile(DTD_REFUSED)
            if depth == 2:
                nodes, line = 0, element.sourceline
            if max_depth is not None and depth > max_depth:
                raise UnreadableFile(depth_text(f"the record on line {line}", max_depth))
            if max_nodes is not None:
                nodes += 1 + len(element.attrib)
                if nodes > max_nodes:
                    where = "the root element" if depth == 1 else f"the record on line {line}"
                    raise UnreadableFile(
                        f"{where} holds more than {max_nodes} XML elements and attributes, "
                        "the most one record may have"
                    )
            continue
        depth -= 1
        if depth == 1:
            yield root, element
            element.clear()
            while element.getprevious() is not None:
                del root[0]  # type: ignore[union-attr]


def _check(
    stream: BinaryIO,
    max_records: int | None = None,
    max_nodes: int | None = None,
    max_depth: int | None = None,
) -> str:
    """The first pass: well-formed to the end, no DTD, a known root, within the limits. Returns
    the record name."""
    record_name = None
    records = 0
    start = stream.tell()
    head = stream.read(PROLOG_BYTES)
    stream.seek(start)
    if any(doctype.search(head) for doctype in _DOCTYPES):
        # Before the parser: libxml2 may refuse the DTD's entities (an amplification) before
        # iterparse hands over the root, and then the DTD would go unnamed.
        raise UnreadableFile(DTD_REFUSED)
    etree.clear_error_log()  # the thread's log: what an error names is then this file's
    try:
        for root, _ in _top_level(stream, max_nodes, max_depth):
            record_name = record_name or BATCHES.get(root.tag)
            if record_name is None:
                raise UnreadableFile(
                    f"unknown root element {mask_text(str(root.tag))}: expected one of {_ROOT_NAMES} "
                    f"in namespace {FILE_NS}"
                )
            records += 1
            if max_records is not None and records > max_records:
                raise UnreadableFile(
                    f"the file holds more than {max_records} records, the most one file may hold: "
                    "split it into several files"
                )
    except etree.XMLSyntaxError as exc:
        if max_depth is not None and str(exc).startswith(_LIBXML2_DEPTH):
            # libxml2's own limit (256 levels, never less than HUB_MAX_XML_DEPTH), met before
            # iterparse handed over the elements that pass ours: ours is the one to name.
            raise UnreadableFile(depth_text(f"the element on line {exc.lineno}", max_depth)) from None
        # libxml2's own words: "Entity 'xxe' not defined".
        detail = str(exc)
        last = exc.error_log.last_error if exc.error_log else None
        if detail.startswith("no element found") and last is not None and last.line > 0:
            # iterparse's own summary of an error libxml2 reported (an undeclared entity).
            detail = f"{last.message.strip()}, line {last.line}"
        raise UnreadableFile(f"the file is not well-formed XML: {mask_text(detail)}") from None
    if record_name is None:
        raise UnreadableFile(f"the file holds no records (one of {_ROOT_NAMES} in {FILE_NS})")
    return record_name


def _children(stream: BinaryIO) -> Iterator[tuple[int, Any]]:
    for index, (_, element) in enumerate(_top_level(stream), start=1):
        yield index, element


def _record(index: int, element: Any, record_name: str) -> Record:
    """One child of the root as a Record: validated if it is a record of this batch, else listed."""
    line = element.sourceline
    name = etree.QName(element) if isinstance(element.tag, str) else None
    if name is None or name.localname != record_name or name.namespace not in RECORD_NAMESPACES:
        # Never skipped silently: a record in another namespace or of another kind is listed.
        local = name.localname if name is not None else "?"
        why = f"unexpected element {element.tag}: this batch holds {record_name} records in {FILE_NS} or {NS}"
        return Record(index, line, None, [FieldError(local, why)])
    record = element if name.namespace == NS else in_soap_namespace(element)
    try:
        envelope = record_to_message(record_name, record, PLACEHOLDER_ID)
    except ValidationFailed as exc:
        return Record(index, line, None, exc.errors)
    except etree.Error as exc:
        return Record(index, line, None, [FieldError(record_name, f"cannot be read: {type(exc).__name__}")])
    message: dict[str, Any] = {"type": envelope.type, "payload": envelope.payload_json()}
    if record.find(f"{{{NS}}}SentAt") is not None:
        message["sent_at"] = envelope.sent_at.isoformat()
    if envelope.correlation_id is not None:
        message["correlation_id"] = envelope.correlation_id
    return Record(index, line, message, [], envelope)


def in_soap_namespace(record: Any) -> Any:
    """A copy of a file-namespace record with every file-namespace element moved into the SOAP
    namespace, so that the SOAP XSD types validate it (the original is left as it is)."""
    copy = deepcopy(record)
    copy.tail = None
    for node in copy.iter():
        if isinstance(node.tag, str) and node.tag.startswith(_FILE_PREFIX):
            node.tag = f"{{{NS}}}{node.tag[len(_FILE_PREFIX) :]}"
    etree.cleanup_namespaces(copy)
    return copy
