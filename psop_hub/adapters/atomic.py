"""Writing a file so that readers (an SFTP client, an ERP) see the old one or the whole new one."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

# What a document's bytes may come as: whole, or in chunks written one after the other (a
# receipt or result of 100,000 records is tens of MB as one string, and as many again encoded).
Data = bytes | Iterable[bytes]


class Streamed:
    """A list member of a `json_document`: its items, made and written one at a time."""

    def __init__(self, items: Iterable[Any]) -> None:
        self.items = items


def json_document(document: dict[str, Any]) -> Iterator[bytes]:
    """`document` as `json.dumps(..., indent=2, ensure_ascii=False)` writes it (the same bytes),
    each member that is `Streamed` one item at a time: its items are never all in memory, as
    objects or as text."""
    # A value no key or string of the document holds, in place of each streamed list.
    markers = {key: f"<{uuid.uuid4().hex}>" for key, value in document.items() if isinstance(value, Streamed)}
    rest = json.dumps({k: markers.get(k, v) for k, v in document.items()}, indent=2, ensure_ascii=False)
    for key, marker in markers.items():
        before, rest = rest.split(json.dumps(marker), 1)
        value = document[key]
        assert isinstance(value, Streamed)
        first = True
        for item in value.items:
            # Its lines one level deeper: every raw newline of the text is JSON's own (those within
            # strings are escaped; textwrap would also split at U+2028, U+0085 and the like in them).
            text = "    " + json.dumps(item, indent=2, ensure_ascii=False).replace("\n", "\n    ")
            yield ((before + "[\n") if first else ",\n").encode() + text.encode()
            first = False
        yield ((before + "[]") if first else "\n  ]").encode()
    yield rest.encode()


def json_chunks(
    head: dict[str, Any], key: str, items: Iterable[Any], tail: dict[str, Any] | None = None
) -> Iterator[bytes]:
    """The document `head`, then `key` with the list of `items`, then `tail` (`json_document`)."""
    return json_document({**head, key: Streamed(items), **(tail or {})})


def _write(stream: Any, data: Data) -> None:
    if isinstance(data, bytes):
        stream.write(data)
    else:
        for chunk in data:
            stream.write(chunk)


def write_atomically(path: Path, data: Data) -> None:
    """Readers see the old file or the whole new one: temporary file, fsync, rename, fsync the dir."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with temporary.open("wb") as stream:
            _write(stream, data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_new(directory: Path, name: str, data: Data, suffix: str = ".receipt.json") -> Path:
    """Write `NAME.receipt.json`, or `NAME.2.receipt.json`, `NAME.3...` when the name is taken: an
    earlier file's receipt is never overwritten. Complete when it appears (a hard link of a synced
    temporary file), and claimed atomically, so two adapters never take one name."""
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".{name}.{uuid.uuid4().hex}.tmp"
    try:
        with temporary.open("wb") as stream:
            _write(stream, data)
            stream.flush()
            os.fsync(stream.fileno())
        n = 1
        while True:
            target = directory / (f"{name}{suffix}" if n == 1 else f"{name}.{n}{suffix}")
            try:
                os.link(temporary, target)
                break
            except FileExistsError:
                n += 1
    finally:
        temporary.unlink(missing_ok=True)
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
    return target
