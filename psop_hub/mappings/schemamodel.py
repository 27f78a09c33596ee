"""What the service's XSD allows, read from the XSD itself, so that errors say it plainly.

libxml2 stops checking an element's content at the first element it does not expect, and then
blames the element it expected there: an unknown `<Colour>` came back as "ValidFrom: is
required". Its value errors quote its own grammar ("[facet 'enumeration'] ... is not an
element of the set", "not a valid value of the atomic type '{urn:...}Money'").

So the structure is checked here, against the content models read from the XSD (each complex
type is a sequence of elements with minOccurs and maxOccurs): an unknown element, one out of
order, one too many and a missing one are each named at their own path. A repaired copy (unknown
and surplus elements left out, the rest in the sequence's order) then goes to libxml2, which
stays the judge of the values; each value it refuses is described from its type's facets
(`must be one of hour, visit, day, month, piece`, `must be a decimal with a point, e.g. 32.50`).
A message never repeats the value it refuses (it may be a HETU).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

from lxml import etree

from psop_hub.hub.errors import FieldError

XS = "http://www.w3.org/2001/XMLSchema"
_DECIMALS = {"decimal"}
_INTEGERS = {
    "int",
    "integer",
    "long",
    "short",
    "byte",
    "positiveInteger",
    "nonNegativeInteger",
    "negativeInteger",
    "nonPositiveInteger",
    "unsignedInt",
    "unsignedLong",
    "unsignedShort",
}
# The value range of the bounded integer types (XSD Part 2), for the message of a value beyond it.
_INTEGER_RANGES: dict[str, tuple[int | None, int | None]] = {
    "int": (-(2**31), 2**31 - 1),
    "long": (-(2**63), 2**63 - 1),
    "short": (-(2**15), 2**15 - 1),
    "byte": (-128, 127),
    "unsignedInt": (0, 2**32 - 1),
    "unsignedShort": (0, 2**16 - 1),
    "unsignedLong": (0, 2**64 - 1),
    "positiveInteger": (1, None),
    "nonNegativeInteger": (0, None),
}
_DEFAULT_EXAMPLES = {"decimal": "32.50", "integer": "2", "date": "2026-11-01"}
_NUMBER_WORDS = {1: "one", 2: "two", 3: "three"}
_EXAMPLE = re.compile(r"e\.g\. ([0-9][0-9.:+\-T]*[0-9])")
_DECIMAL_TEXT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")
_DATE_TEXT = re.compile(r"-?[0-9]{4,}-[0-9]{2}-[0-9]{2}(Z|[+-][0-9]{2}:[0-9]{2})?")
_DATETIME_TEXT = re.compile(
    r"-?[0-9]{4,}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})?"
)
# Sequences of more elements than this are not listed in a message; the XSD is.
_LISTED_AT_MOST = 6


@dataclass(frozen=True)
class Part:
    """One element of a sequence: its name, its type's key, how often it may occur (None: unbounded)."""

    name: str
    type: str
    min: int
    max: int | None


@dataclass(frozen=True)
class SimpleType:
    """A simple type: the built-in type it restricts and its facets."""

    base: str
    enumeration: tuple[str, ...] = ()
    facets: tuple[tuple[str, str], ...] = ()
    documentation: str = ""

    def facet(self, name: str) -> str | None:
        """The value of one facet, or None."""
        return next((value for key, value in self.facets if key == name), None)

    @property
    def example(self) -> str:
        """A valid value to show: the documentation's "e.g." if it gives one."""
        found = _EXAMPLE.search(self.documentation)
        if found:
            return found.group(1)
        family = "decimal" if self.base in _DECIMALS else "integer" if self.base in _INTEGERS else self.base
        return _DEFAULT_EXAMPLES.get(family, "")


@dataclass(frozen=True)
class SchemaModel:
    """The content models and simple types of one XSD (one target namespace)."""

    namespace: str
    sequences: dict[str, tuple[Part, ...]]
    simple: dict[str, SimpleType]
    elements: dict[str, str]

    def simple_type(self, key: str) -> SimpleType:
        """A named simple type, or a built-in one (`xsd:date`) without facets."""
        return self.simple.get(key) or SimpleType(base=key.removeprefix("xsd:"))


def _type_key(node: Any, reference: str) -> str:
    """`tns:Money` -> `Money`; `xsd:date` -> `xsd:date`, whatever the prefixes are."""
    prefix, _, local = reference.rpartition(":")
    namespace = node.nsmap.get(prefix or None)
    return f"xsd:{local}" if namespace == XS else local


def _documentation(node: Any) -> str:
    text = node.findtext(f"{{{XS}}}annotation/{{{XS}}}documentation") or ""
    return " ".join(text.split())


def _sequence(node: Any) -> tuple[Part, ...] | None:
    """A complexType's parts, if it is a plain sequence of elements (else None: not modelled)."""
    children = [c for c in node if isinstance(c.tag, str) and c.tag != f"{{{XS}}}annotation"]
    if len(children) != 1 or children[0].tag != f"{{{XS}}}sequence" or node.get("mixed") == "true":
        return None
    parts = []
    for item in children[0]:
        if not isinstance(item.tag, str) or item.tag == f"{{{XS}}}annotation":
            continue
        if item.tag != f"{{{XS}}}element" or item.get("name") is None or item.get("type") is None:
            return None
        most = item.get("maxOccurs", "1")
        parts.append(
            Part(
                name=item.get("name"),
                type=_type_key(item, item.get("type")),
                min=int(item.get("minOccurs", "1")),
                max=None if most == "unbounded" else int(most),
            )
        )
    return tuple(parts)


def _simple(node: Any, named: dict[str, Any]) -> SimpleType | None:
    restriction = node.find(f"{{{XS}}}restriction")
    if restriction is None or restriction.get("base") is None:
        return None
    base = _type_key(restriction, restriction.get("base"))
    facets = tuple(
        (etree.QName(f).localname, f.get("value", ""))
        for f in restriction
        if isinstance(f.tag, str) and etree.QName(f).localname not in ("enumeration", "annotation")
    )
    enumeration = tuple(f.get("value", "") for f in restriction.iterfind(f"{{{XS}}}enumeration"))
    if not base.startswith("xsd:") and base in named:  # a restriction of one of ours: inherit
        inherited = _simple(named[base], named)
        if inherited is not None:
            return SimpleType(
                inherited.base,
                enumeration or inherited.enumeration,
                inherited.facets + facets,
                _documentation(node) or inherited.documentation,
            )
    return SimpleType(base.removeprefix("xsd:"), enumeration, facets, _documentation(node))


def read_model(path: Path) -> SchemaModel:
    """The model of one XSD file (a trusted file of the hub's own)."""
    root = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
    namespace = root.get("targetNamespace", "")
    named_simple = {n.get("name"): n for n in root.iterfind(f"{{{XS}}}simpleType")}
    simple = {name: t for name, node in named_simple.items() if (t := _simple(node, named_simple))}
    sequences: dict[str, tuple[Part, ...]] = {}
    for node in root.iterfind(f"{{{XS}}}complexType"):
        parts = _sequence(node)
        if parts is not None:
            sequences[node.get("name")] = parts
    elements: dict[str, str] = {}
    for node in root.iterfind(f"{{{XS}}}element"):
        name = node.get("name")
        if node.get("type") is not None:
            elements[name] = _type_key(node, node.get("type"))
        elif (anonymous := node.find(f"{{{XS}}}complexType")) is not None:
            parts = _sequence(anonymous)
            if parts is not None:
                sequences[f"element:{name}"] = parts
                elements[name] = f"element:{name}"
    return SchemaModel(namespace, sequences, simple, elements)


@lru_cache(maxsize=4)
def model_of(path: Path) -> SchemaModel:
    """The model of an XSD file, read once per process."""
    return read_model(path)


# --- the structure ------------------------------------------------------------------------------


@dataclass
class Findings:
    """What the structure check found: errors, the simple type at each path, the paths it modelled."""

    errors: list[FieldError] = field(default_factory=list)
    types: dict[str, str] = field(default_factory=dict)
    modelled: set[str] = field(default_factory=set)


def check_structure(model: SchemaModel, element: Any, path: str) -> tuple[Any, Findings]:
    """Check an element (an operation or a record) against its content model.

    `path` names the element in error fields ("" for a SOAP operation, whose children are the
    top of every path). Returns a repaired copy for libxml2 to judge the values of, and the findings.
    """
    findings = Findings()
    copy = deepcopy(element)
    copy.tail = None
    name = etree.QName(copy)
    type_key = model.elements.get(name.localname) if name.namespace == model.namespace else None
    if type_key is not None and type_key in model.sequences:
        _walk(model, copy, type_key, path, name.localname, findings)
    return copy, findings


def _join(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name


def _walk(model: SchemaModel, element: Any, type_key: str, path: str, label: str, found: Findings) -> None:
    parts = model.sequences[type_key]
    index = {p.name: i for i, p in enumerate(parts)}
    found.modelled.add(path)
    # Where the errors about this element's own children are named: a SOAP operation's are
    # named below it (`SubmitVoucherDecision/Colour`), every other element's below its path.
    here = path or label
    if (element.text or "").strip() or any((c.tail or "").strip() for c in element):
        listed = _listing(parts)
        found.errors.append(
            FieldError(here, f"must hold elements{f' ({listed})' if listed else ''}, not text")
        )
    element.text = None  # named once here; libxml2 need not name it again
    counts: dict[str, int] = {}
    misnamed: set[str] = set()
    kept: list[tuple[int, Any]] = []
    for child in list(element):
        if not isinstance(child.tag, str):
            element.remove(child)
            continue
        child_name = etree.QName(child)
        local = child_name.localname
        if local not in index or child_name.namespace != model.namespace:
            found.errors.append(FieldError(_join(here, local), _unknown(model, child_name, label, parts)))
            if local in index:
                misnamed.add(local)  # there, in another namespace: not also "is required"
            element.remove(child)
            continue
        part = parts[index[local]]
        counts[local] = counts.get(local, 0) + 1
        if part.max is not None and counts[local] > part.max:
            times = "once" if part.max == 1 else f"{part.max} times"
            found.errors.append(FieldError(_join(path, local), f"may appear only {times}"))
            element.remove(child)
            continue
        kept.append((index[local], child))
    for i in _out_of_order([i for i, _ in kept]):
        found.errors.append(FieldError(_join(path, parts[kept[i][0]].name), _misplaced(parts, kept, i)))
    for part in parts:
        if counts.get(part.name, 0) < part.min and part.name not in misnamed:
            message = "is required" if part.min == 1 else f"must appear at least {part.min} times"
            found.errors.append(FieldError(_join(path, part.name), message))
    # The repaired copy: the children in the sequence's order (a stable sort keeps repeats in theirs).
    for _, child in kept:
        element.remove(child)
    for position, child in sorted(kept, key=lambda pair: pair[0]):
        part = parts[position]
        child.tail = None
        element.append(child)
        child_path = _join(path, part.name)
        if part.type in model.sequences:
            _walk(model, child, part.type, child_path, part.name, found)
        else:
            found.types[child_path] = part.type
            if len(child):
                found.errors.append(FieldError(child_path, "must hold a value, not elements"))
                for grandchild in list(child):
                    child.remove(grandchild)


def _listing(parts: tuple[Part, ...]) -> str | None:
    """The names of a short sequence ("Hetu and HomeMunicipality"); None for a long one."""
    if len(parts) > _LISTED_AT_MOST:
        return None
    names = [p.name for p in parts]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _unknown(model: SchemaModel, name: etree.QName, parent: str, parts: tuple[Part, ...]) -> str:
    """The message for an element the content model has no place for."""
    names = {p.name for p in parts}
    if name.localname in names:
        where = f"the namespace {name.namespace}" if name.namespace else "no namespace"
        return f"is in {where}: the elements of a {parent} are in {model.namespace}"
    alike = [n for n in names if n.lower() == name.localname.lower()]
    if alike:
        return f"is not an element of {parent}: the name is {alike[0]} (names are case-sensitive)"
    listed = _listing(parts)
    if listed is None:
        return f"is not an element of {parent} (the XSD, /soap/v1?xsd, lists its elements in order)"
    return f"is not an element of {parent}, which holds {listed}"


def _out_of_order(indexes: list[int]) -> list[int]:
    """Positions (in `indexes`) outside one longest non-decreasing run: the fewest elements that
    are out of place. ValidFrom written before Unit is one misplaced element, not three."""
    tails: list[int] = []  # tails[k]: smallest last value of a run of length k + 1
    tail_at: list[int] = []  # the position of that last value
    previous = [-1] * len(indexes)
    for position, value in enumerate(indexes):
        k = bisect_right(tails, value)
        if k == len(tails):
            tails.append(value)
            tail_at.append(position)
        else:
            tails[k], tail_at[k] = value, position
        previous[position] = tail_at[k - 1] if k else -1
    in_order: set[int] = set()
    position = tail_at[-1] if tail_at else -1
    while position >= 0:
        in_order.add(position)
        position = previous[position]
    return [p for p in range(len(indexes)) if p not in in_order]


def _misplaced(parts: tuple[Part, ...], kept: list[tuple[int, Any]], at: int) -> str:
    """Where an element out of order belongs, between the nearest others that are present."""
    mine = kept[at][0]
    others = sorted({i for n, (i, _) in enumerate(kept) if n != at})
    before = [i for i in others if i < mine]
    after = [i for i in others if i > mine]
    if before and after:
        return f"is out of order: it comes after {parts[before[-1]].name} and before {parts[after[0]].name}"
    if before:
        return f"is out of order: it comes after {parts[before[-1]].name}"
    if after:
        return f"is out of order: it comes before {parts[after[0]].name}"
    return "is out of order"


# --- the values ---------------------------------------------------------------------------------


def value_message(model: SchemaModel, type_key: str, text: str) -> str:
    """Why `text` is not a value of the type, in plain words (never quoting the value)."""
    kind = model.simple_type(type_key)
    value = " ".join(text.split())
    if kind.enumeration:
        return "must be one of " + ", ".join(kind.enumeration)
    if kind.base in _DECIMALS or kind.base in _INTEGERS:
        return _number_message(kind, value)
    if kind.base == "date":
        if not _DATE_TEXT.fullmatch(value):
            return f"must be a date YYYY-MM-DD, e.g. {kind.example}"
        try:
            date.fromisoformat(value[:10])
        except ValueError:
            return "is not a valid calendar date"
        return f"must be a date YYYY-MM-DD, e.g. {kind.example}"
    if kind.base == "dateTime":
        if _DATETIME_TEXT.fullmatch(value):
            return "is not a valid date and time"
        return "must be a date and time with its UTC offset, e.g. 2026-11-02T08:15:00+02:00"
    if kind.base == "boolean":
        return "must be true or false"
    return _string_message(kind, text)


def _number_message(kind: SimpleType, value: str) -> str:
    integer = kind.base in _INTEGERS
    if not (_INTEGER_TEXT if integer else _DECIMAL_TEXT).fullmatch(value):
        what = "a whole number" if integer else "a decimal with a point"
        return f"must be {what}, e.g. {kind.example}"
    number = Decimal(value)
    digits = kind.facet("fractionDigits")
    if digits is not None and _fraction_digits(number) > int(digits):
        count = int(digits)
        decimals = "a whole number" if count == 0 else f"at most {_NUMBER_WORDS.get(count, count)} decimals"
        return f"must have {decimals}, e.g. {kind.example}" if count else f"must be {decimals}"
    low, high = _INTEGER_RANGES.get(kind.base, (None, None))
    bounds = [(k, v) for k, v in kind.facets if k in ("minInclusive", "minExclusive", "maxInclusive")]
    bounds += [(k, v) for k, v in kind.facets if k == "maxExclusive"]
    if low is not None:
        bounds.append(("minInclusive", str(low)))
    if high is not None:
        bounds.append(("maxInclusive", str(high)))
    for facet, limit_text in bounds:
        try:
            limit = Decimal(limit_text)
        except InvalidOperation:
            continue
        if facet == "minInclusive" and number < limit:
            return "must not be negative" if limit == 0 else f"must be at least {limit_text}"
        if facet == "minExclusive" and number <= limit:
            return "must be greater than zero" if limit == 0 else f"must be greater than {limit_text}"
        if facet == "maxInclusive" and number > limit:
            return f"must be at most {limit_text}"
        if facet == "maxExclusive" and number >= limit:
            return f"must be less than {limit_text}"
    total = kind.facet("totalDigits")
    if total is not None:
        return f"must have at most {total} digits"
    what = "a whole number" if integer else "a decimal with a point"
    return f"must be {what}, e.g. {kind.example}"


def _fraction_digits(number: Decimal) -> int:
    exponent = number.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _string_message(kind: SimpleType, text: str) -> str:
    length = len(text)
    low, high = kind.facet("minLength"), kind.facet("maxLength")
    exact = kind.facet("length")
    if exact is not None and length != int(exact):
        return f"must be {exact} characters long"
    if low is not None and length < int(low):
        return "must not be empty" if int(low) == 1 else f"must be at least {low} characters long"
    if high is not None and length > int(high):
        return f"must be at most {high} characters long"
    if kind.facet("pattern") is not None:
        # The pattern's words are in the type's documentation ("a Finnish business ID ...").
        described = kind.documentation.rstrip(".")
        if described.startswith(("a ", "an ")):
            return f"must be {described}"
        return f"must match the pattern {kind.facet('pattern')}"
    return "is not a value the XSD allows here"
