"""Documents written in chunks are the bytes `json.dumps(indent=2, ensure_ascii=False)` writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from psop_hub.adapters.atomic import Streamed, json_chunks, json_document, write_atomically, write_new

ITEMS: list[Any] = [
    {"record": 1, "line": 2, "message_id": "ä-1", "errors": [{"field": "quantity", "message": 'ei\n"ok"'}]},
    {"record": 2, "line": None, "status": "applied", "nested": {"a": [1, 2, {"b": []}], "c": {}}},
    "plain, with line separators of other kinds: \u2028 \x85 \x1c \r",
    [],
    3.25,
]


@pytest.mark.parametrize("count", [0, 1, 2, len(ITEMS)])
@pytest.mark.parametrize("tail", [None, {}, {"error": "the file ends in the middle", "more": [1]}])
def test_chunks_are_the_bytes_of_json_dumps(count: int, tail: dict[str, Any] | None) -> None:
    head = {"file": "toteumat.csv", "records": count, "counts": {"applied": 1}, "empty": []}
    document = {**head, "results": ITEMS[:count], **(tail or {})}
    expected = json.dumps(document, indent=2, ensure_ascii=False).encode()
    assert b"".join(json_chunks(head, "results", iter(ITEMS[:count]), tail)) == expected


def test_the_items_are_taken_one_at_a_time() -> None:
    taken: list[int] = []

    def items() -> Any:
        for n in range(3):
            taken.append(n)
            yield {"n": n}

    chunks = json_chunks({"a": 1}, "results", items())
    next(chunks)
    assert taken == [0]


def test_chunked_writes_give_the_whole_document(tmp_path: Path) -> None:
    head = {"file": "x.xml"}
    write_atomically(tmp_path / "r.json", json_chunks(head, "results", iter(ITEMS)))
    written = write_new(tmp_path, "x.xml", json_chunks(head, "messages", iter(ITEMS)))
    assert json.loads((tmp_path / "r.json").read_text()) == {**head, "results": ITEMS}
    assert json.loads(written.read_text()) == {**head, "messages": ITEMS}


@pytest.mark.parametrize("counts", [(0, 0), (2, 0), (0, 3), (2, len(ITEMS))])
def test_a_document_of_several_streamed_lists_is_the_bytes_of_json_dumps(counts: tuple[int, int]) -> None:
    refused, listed = (ITEMS[: counts[0]], ITEMS[: counts[1]])
    document = {"file": "x.csv", "rejected": refused, "records": 4, "messages": listed, "error": "ä"}
    streamed = {**document, "rejected": Streamed(iter(refused)), "messages": Streamed(iter(listed))}
    assert b"".join(json_document(streamed)) == json.dumps(document, indent=2, ensure_ascii=False).encode()
