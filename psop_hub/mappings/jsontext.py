"""Request bodies to JSON values, strictly and within limits, before any model sees them.

`json.loads` alone answers hostile bodies with the wrong errors: a body nested a thousand levels
deep raises RecursionError, an integer of 5,000 digits a ValueError from Python's conversion
limit, `1e999999` becomes infinity and `NaN` a float, a key given twice keeps its last value
silently, and `"\\u0000"` is a NUL character that PostgreSQL refuses to store. Here each is an
`Unreadable` error that says what is wrong, and the hub answers 400.
"""

from __future__ import annotations

import json
import math
from typing import Any, NoReturn

from psop_hub.hub.errors import Unreadable

__all__ = ["MAX_NUMBER_CHARS", "parse_json", "shown"]

# Longest number literal taken: versions are 32-bit integers, amounts are strings.
MAX_NUMBER_CHARS = 30
_BOM = b"\xef\xbb\xbf"


def _refuse_constant(name: str) -> NoReturn:
    raise Unreadable(f"the body holds {name}, which is not a JSON number")


def _integer(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise Unreadable(f"the body holds a number of {len(text)} digits (at most {MAX_NUMBER_CHARS})")
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise Unreadable(f"the body holds a number of {len(text)} characters (at most {MAX_NUMBER_CHARS})")
    value = float(text)
    if not math.isfinite(value):
        raise Unreadable("the body holds a number too large to represent")
    return value


# Longest piece of a sender's text (a key) repeated in an error message.
SHOWN_CHARS = 40


def shown(text: str) -> str:
    """A sender's text as an error message may repeat it: cut to SHOWN_CHARS characters."""
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise Unreadable(f"the body holds the key {shown(key)!r} more than once in one object")
            seen.add(key)
    return value


# Built once: json.loads with hooks would build a new decoder for every request.
_DECODER = json.JSONDecoder(
    parse_int=_integer, parse_float=_float, parse_constant=_refuse_constant, object_pairs_hook=_object
)


def _check_shape(value: Any, max_depth: int) -> None:
    # Iterative, so that it cannot itself run out of stack.
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise Unreadable("the body holds a NUL character (\\u0000) in a string")
            continue
        if isinstance(item, dict):
            if any("\x00" in key for key in item):
                raise Unreadable("the body holds a NUL character (\\u0000) in a key")
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            raise Unreadable(f"the body is nested more than {max_depth} levels deep")
        stack.extend((child, depth + 1) for child in children)


def parse_json(body: bytes, max_depth: int) -> Any:
    """Decode a UTF-8 JSON body (a UTF-8 BOM is tolerated) nested at most `max_depth` deep;
    raise `Unreadable` naming the problem otherwise."""
    if body.startswith(_BOM):
        body = body[len(_BOM) :]
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Unreadable(f"the body is not valid UTF-8 (byte {exc.start})") from None
    try:
        value = _DECODER.decode(text)
    except RecursionError:
        raise Unreadable(f"the body is nested more than {max_depth} levels deep") from None
    except json.JSONDecodeError as exc:
        raise Unreadable(
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    _check_shape(value, max_depth)
    return value
