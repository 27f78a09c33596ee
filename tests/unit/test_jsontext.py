"""Hostile JSON bodies are refused with a clear reason, never with a crash of the parser."""

from __future__ import annotations

import pytest

from psop_hub.hub.errors import Unreadable
from psop_hub.mappings.jsontext import parse_json


def refused(body: bytes, depth: int = 32) -> str:
    with pytest.raises(Unreadable) as caught:
        parse_json(body, depth)
    assert caught.value.errors and caught.value.errors[0].message == caught.value.reason
    return caught.value.reason


@pytest.mark.parametrize("levels", [33, 900, 1000, 100_000])
def test_deep_nesting_is_refused(levels: int) -> None:
    assert "nested more than 32 levels" in refused(b"[" * levels + b"]" * levels)
    assert "nested more than 32 levels" in refused(b'{"a":' * levels + b"1" + b"}" * levels)


def test_nesting_at_the_limit_is_read() -> None:
    assert parse_json(b"[" * 32 + b"]" * 32, 32) is not None


@pytest.mark.parametrize("digits", [31, 4301, 100_000])
def test_integers_with_too_many_digits_are_refused(digits: int) -> None:
    assert f"a number of {digits} digits" in refused(b'{"version": ' + b"7" * digits + b"}")


@pytest.mark.parametrize("number", [b"1e999999", b"-1e400", b"1" * 40 + b".5"])
def test_huge_or_long_floats_are_refused(number: bytes) -> None:
    assert "number" in refused(b'{"version": ' + number + b"}")


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_json_constants_are_refused(constant: bytes) -> None:
    assert "not a JSON number" in refused(b'{"version": ' + constant + b"}")


@pytest.mark.parametrize(
    "body",
    [b'{"message_id": "\xff\xfe"}', b"\xc3\x28", b'{"a": "\xed\xa0\x80"}', "{}".encode("utf-16")],
)
def test_invalid_utf8_is_refused(body: bytes) -> None:
    assert "not valid UTF-8" in refused(body)


def test_not_json_names_the_place() -> None:
    assert "line 1 column 2" in refused(b"{x")


def test_a_utf8_bom_and_ordinary_numbers_are_read() -> None:
    assert parse_json(b'\xef\xbb\xbf{"version": 2, "x": [1.5, -3]}', 32) == {"version": 2, "x": [1.5, -3]}


@pytest.mark.parametrize(
    "body",
    [b'{"version": 1, "version": 2}', b'{"payload": {"a": 1, "b": 2, "a": 1}}', b'[{"x": 1, "x": 1}]'],
)
def test_a_key_given_twice_in_one_object_is_refused(body: bytes) -> None:
    assert "more than once" in refused(body)


def test_the_same_key_in_different_objects_is_fine() -> None:
    assert parse_json(b'{"a": {"a": 1}, "b": [{"a": 2}, {"a": 3}]}', 32) == {
        "a": {"a": 1},
        "b": [{"a": 2}, {"a": 3}],
    }


def test_a_repeated_long_key_is_named_cut_short() -> None:
    key = "k" * 5000
    reason = refused(f'{{"{key}": 1, "{key}": 2}}'.encode())
    assert len(reason) < 200 and "k" * 40 + "…" in reason


@pytest.mark.parametrize(
    "body",
    [b'{"message_id": "a\\u0000b"}', b'{"a\\u0000": 1}', b'["\\u0000"]', b'"\\u0000"'],
)
def test_an_escaped_nul_character_is_refused(body: bytes) -> None:
    assert "NUL character" in refused(body)


def test_a_raw_nul_byte_is_not_json() -> None:
    assert "not valid JSON" in refused(b'{"message_id": "a\x00b"}')
