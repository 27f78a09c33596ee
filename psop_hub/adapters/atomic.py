"""Writing a file so that readers (an SFTP client, an ERP) see the old one or the whole new one."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> None:
    """Readers see the old file or the whole new one: temporary file, fsync, rename, fsync the dir."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with temporary.open("wb") as stream:
            stream.write(data)
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


def write_new(directory: Path, name: str, data: bytes, suffix: str = ".receipt.json") -> Path:
    """Write `NAME.receipt.json`, or `NAME.2.receipt.json`, `NAME.3...` when the name is taken: an
    earlier file's receipt is never overwritten. Complete when it appears (a hard link of a synced
    temporary file), and claimed atomically, so two adapters never take one name."""
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".{name}.{uuid.uuid4().hex}.tmp"
    try:
        with temporary.open("wb") as stream:
            stream.write(data)
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
