"""One record of a batch file, whatever its format: what the CSV and XML readers yield.

A reader validates each record on its own and yields a `Record`: the canonical message (built
with a placeholder message_id, since the id derives from the file's content hash, which the
reader does not know) or the errors found. `Record.stamped` gives the message as the hub stores
it. A file that cannot be read at all raises `UnreadableFile` instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psop_hub.hub.errors import FieldError, Unreadable
from psop_hub.mappings.canonical import Envelope

PLACEHOLDER_ID = "x"  # the message_id a reader validates with; `stamped` replaces it


class UnreadableFile(Unreadable):
    """The file as a whole cannot be read (not well-formed, unknown layout, empty, binary);
    `reason` says why and what was expected, and goes into the file's receipt."""


@dataclass(frozen=True)
class Record:
    """One record of a file: its canonical message (without message_id, and without sent_at
    unless the record carries its own), or the errors found."""

    index: int  # 1-based record number (CSV: blank lines not counted; XML: children of the root)
    line: int | None  # 1-based physical line where the record starts
    message: dict[str, Any] | None  # {"type": ..., "payload": {...}} when valid
    errors: list[FieldError] = field(default_factory=list)  # CSV column names or SOAP element paths
    # The validated message (with a placeholder message_id, and sent_at if the record has none),
    # so that a caller need not validate it a second time.
    envelope: Envelope | None = field(default=None, compare=False, repr=False)

    @property
    def valid(self) -> bool:
        """Whether the record became a message."""
        return self.message is not None

    def stamped(self, file_sha256: str, now: datetime) -> Envelope | None:
        """The message as the hub stores it: the message_id derived from the file and the position,
        sent `now` unless the record says when; None for an invalid record."""
        if self.envelope is None or self.message is None:
            return None
        update: dict[str, Any] = {"message_id": record_message_id(file_sha256, self.index)}
        if "sent_at" not in self.message:
            update["sent_at"] = now
        return self.envelope.model_copy(update=update)


def record_message_id(file_sha256: str, index: int) -> str:
    """The message_id of a file's record, stable across drops of the same content."""
    return f"file-{file_sha256[:32]}-{index}"
