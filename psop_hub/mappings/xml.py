"""Untrusted XML, shared by the SOAP endpoint and the XML batch files: the hardened parser
configuration, the service's XML Schema (compiled once per thread) and the mapping of XSD
errors to field errors named by SOAP element paths (`VoucherDecision/Client/Hetu`).

The contract files live beside this module, in `wsdl/`: the WSDL, the XSD it imports, and the
file-batch XSD that shares the SOAP types.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

from lxml import etree

from psop_hub.hub.errors import FieldError, Unreadable
from psop_hub.hub.privacy import mask_text
from psop_hub.mappings.schemamodel import check_structure, model_of, value_message

WSDL_DIR = Path(__file__).resolve().parent / "wsdl"
WSDL_FILE = WSDL_DIR / "psop-hub-v1.wsdl"
XSD_FILE = WSDL_DIR / "psop-hub-v1.xsd"
FILE_XSD_FILE = WSDL_DIR / "psop-hub-file-v1.xsd"

# Every parser of untrusted XML (SOAP bodies, batch files): no entity expansion, no DTD loading,
# no network; libxml2's default depth and size limits stay on (huge_tree off).
HARDENED: dict[str, bool] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "huge_tree": False,
    "remove_comments": True,
    "remove_pis": True,
}


class XmlRejected(Unreadable):
    """The body is not XML the hub will read (not well-formed, a DTD, too deep)."""


def hardened_parser() -> etree.XMLParser:
    """A new XML parser with the hardened configuration (parsers are not shared between threads)."""
    return etree.XMLParser(dtd_validation=False, **HARDENED)


_PARSERS = threading.local()


def _thread_parser() -> etree.XMLParser:
    """This thread's hardened parser, made once: a parser may parse one document after another
    (its error log is the last parse's), just not in two threads at once."""
    parser: etree.XMLParser | None = getattr(_PARSERS, "parser", None)
    if parser is None:
        parser = _PARSERS.parser = hardened_parser()
    return parser


def iterparse(stream: BinaryIO) -> Iterator[tuple[str, Any]]:
    """`start` and `end` events of a stream, with the same hardening as `parse_xml`."""
    return etree.iterparse(stream, events=("start", "end"), **HARDENED)


# Most errors one check reports in full; the rest are counted in one last error. Each reported
# error costs a look-up in the document: tens of thousands took minutes of CPU.
MAX_XML_ERRORS = 100


_DOCTYPE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)
# The fewest bytes an element (`<a/>`) or an attribute (` a=""`) takes in any encoding (one byte
# or more a character): a body shorter than this many bytes a node cannot pass the node limit.
_MIN_NODE_BYTES = 4


def parse_xml(body: bytes, max_nodes: int | None = None, max_depth: int | None = None) -> Any:
    """Parse untrusted XML; DTDs are refused outright (billion laughs, external entities), and so
    is a document of more than `max_nodes` elements and attributes together, or of elements
    nested more than `max_depth` levels (the root is level 1; libxml2 refuses more than 256)."""
    if _DOCTYPE.search(body, 0, 4096) or b"<!ENTITY" in body:
        raise XmlRejected("DTDs and entity declarations are not allowed in a SOAP message")
    try:
        root = etree.fromstring(body, _thread_parser())
    except etree.XMLSyntaxError as exc:
        raise XmlRejected(f"the body is not well-formed XML: {mask_text(str(exc))}") from None
    if root is None:
        raise XmlRejected("the body is empty")
    if root.getroottree().docinfo.doctype:  # past the byte check (UTF-16, a long prolog): still no
        raise XmlRejected("DTDs and entity declarations are not allowed in a SOAP message")
    if max_nodes is not None and len(body) < _MIN_NODE_BYTES * max_nodes:
        max_nodes = None  # too short to hold that many, whatever its encoding
    if max_nodes is not None or max_depth is not None:
        _check_limits(root, max_nodes, max_depth)
    return root


# Elements and attributes of a parsed document, counted by libxml2 (the parser drops comments and
# processing instructions): a walk in Python cost more than the parse of a usual SOAP call.
_NODES = etree.XPath("count(descendant-or-self::*) + count(descendant-or-self::*/@*)")


@lru_cache(maxsize=8)
def _deeper_than(max_depth: int) -> etree.XPath:
    """True for a root with an element below `max_depth` levels (the root is level 1)."""
    return etree.XPath("boolean(" + "/".join(["*"] * max_depth) + ")")


def _check_limits(root: Any, max_nodes: int | None, max_depth: int | None) -> None:
    if max_depth is not None and _deeper_than(max_depth)(root):
        raise XmlRejected(depth_text("the message", max_depth))
    if max_nodes is not None and _NODES(root) > max_nodes:
        raise XmlRejected(f"the message holds more than {max_nodes} XML elements and attributes")


def depth_text(what: str, max_depth: int) -> str:
    """The refusal of XML nested too deep, in the same words for SOAP and files."""
    return f"{what} nests XML elements deeper than {max_depth} levels, the XML depth limit"


_SCHEMAS = threading.local()


def schema() -> etree.XMLSchema:
    """The service's XML Schema (the file the WSDL imports), compiled once per thread.

    An `XMLSchema` keeps its `error_log` (and libxml2 its validation state) on the object: shared
    by request threads, one call's errors showed up in another sender's fault and an invalid
    message could pass. Each thread gets its own compiled copy (a few ms, once).
    """
    compiled: etree.XMLSchema | None = getattr(_SCHEMAS, "schema", None)
    if compiled is None:
        compiled = etree.XMLSchema(etree.parse(str(XSD_FILE), hardened_parser()))
        _SCHEMAS.schema = compiled
    return compiled


def _node_of(document: Any, element_path: str, namespaces: dict[str, str]) -> Any:
    """The element an XSD error points at. libxml2's path text has no names for default-namespace
    elements (`/*/*/*[5]`), so it is evaluated on the document rather than read as text."""
    try:
        nodes = document.getroottree().xpath(element_path, namespaces=namespaces) if element_path else []
    except etree.XPathError:
        nodes = []
    return nodes[0] if nodes and isinstance(nodes[0], etree._Element) else None


def _path_of(node: Any) -> str:
    """A node's path of local names below the checked element: `VoucherDecision/Client/Hetu`."""
    if node is None:
        return ""
    chain = [node, *node.iterancestors()]
    return "/".join(etree.QName(e).localname for e in reversed(chain[:-1]))


_MISSING = re.compile(r"Missing child element\(s\)\. Expected is .*?\(? ?\{[^}]*\}(\w+)")
_UNEXPECTED = re.compile(
    r"Element '\{[^}]*\}(\w+)': This element is not expected\.( Expected is .*?\{[^}]*\}(\w+))?"
)
_ATTRIBUTE = re.compile(r"attribute '([^']*)': The attribute '[^']*' is not allowed")


def schema_errors(element: Any, prefix: str = "") -> list[FieldError]:
    """Check an operation element (or a file record, naming it `prefix`) against the XSD; each of
    the first MAX_XML_ERRORS problems becomes one field error, and one more counts the rest.

    The structure is checked against the XSD's content models (`schemamodel`), so that an unknown
    or misplaced element is named as what it is; libxml2 judges the values of a repaired copy,
    and each value it refuses is described from its type (`must be one of hour, visit, ...`).
    """
    xsd = schema()
    if xsd.validate(element):
        return []
    model = model_of(XSD_FILE)
    repaired, found = check_structure(model, element, prefix)
    errors = [FieldError(mask_text(e.field), mask_text(e.message)) for e in found.errors]
    # Again on a document of its own, so that the error paths start at this element.
    document = etree.fromstring(etree.tostring(repaired), hardened_parser())
    xsd.validate(document)
    entries = list(xsd.error_log)
    namespaces = {k: v for e in document.iter() if isinstance(e.tag, str) for k, v in e.nsmap.items() if k}
    for entry in entries[:MAX_XML_ERRORS]:
        node = _node_of(document, entry.path or "", namespaces)
        field = mask_text("/".join(p for p in (prefix, _path_of(node)) if p))
        message = mask_text(entry.message)
        missing = _MISSING.search(message)
        unexpected = _UNEXPECTED.search(message)
        attribute = _ATTRIBUTE.search(message)
        if missing or unexpected:
            if field in found.modelled or (unexpected and field.rsplit("/", 1)[0] in found.modelled):
                continue  # the structure check has named it already, where it is
            if missing:
                field, message = f"{field}/{missing.group(1)}", "is required"
            elif unexpected and unexpected.group(3):
                parent = field.rsplit("/", 1)[0]
                field, message = (
                    f"{parent}/{unexpected.group(3)}",
                    "is required (or elements are out of order)",
                )
        elif attribute:
            message = f"must not have the attribute {mask_text(attribute.group(1))}"
        elif field in found.types and node is not None:
            message = value_message(model, found.types[field], node.text or "")
        else:
            message = re.sub(r"^Element '\{[^}]*\}\w+': ", "", message)
        errors.append(FieldError(field, message))
    unique = list(dict.fromkeys(errors))  # a value refused by a facet and by its type: once
    if len(unique) > MAX_XML_ERRORS or len(entries) > MAX_XML_ERRORS:
        # Named by the record element the listed errors are in (VoucherDecision).
        record = unique[0].field.split("/", 1)[0] if unique and unique[0].field else prefix
        rest = max(len(unique), len(found.errors) + len(entries)) - MAX_XML_ERRORS
        unique = [
            *unique[:MAX_XML_ERRORS],
            FieldError(record, f"{rest} more problems with the schema, not listed"),
        ]
    return unique
