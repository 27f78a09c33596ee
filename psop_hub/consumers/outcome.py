"""What a domain handler receives and returns."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection


@dataclass(frozen=True)
class Context:
    """The stored message being applied, minus its payload."""

    hub_id: uuid.UUID
    sender: str
    type: str
    message_id: str
    # Who sent it, as registered (None if the client was deleted since).
    sender_role: str | None = None
    sender_organisers: tuple[str, ...] = ()

    def by_organisers_system(self, organiser: str) -> bool:
        """Whether the message came from a client system of `organiser` (its own decision): a
        system client acting for it, among the one or more organisers it acts for."""
        return self.sender_role == "system" and organiser in self.sender_organisers


@dataclass(frozen=True)
class Outcome:
    """A handler's result: `applied` or `superseded`, with a line for the journey."""

    status: str
    detail: str


def superseded(kind: str, number: str, version: int, current: int) -> Outcome | None:
    """A `superseded` outcome when `version` is not newer than the state's, else None."""
    if version <= current:
        return Outcome("superseded", f"{kind} {number}: version {version} is not newer than {current}")
    return None


Handler = Callable[[Connection, Context, Any], Outcome]
# A batch's messages of one type, each with its parsed payload: their outcomes, in that order.
BatchHandler = Callable[[Connection, Sequence[tuple[Context, Any]]], list[Outcome]]
