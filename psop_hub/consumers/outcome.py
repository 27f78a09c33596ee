"""What a domain handler receives and returns."""

from __future__ import annotations

import uuid
from collections.abc import Callable
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


@dataclass(frozen=True)
class Outcome:
    """A handler's result: `applied` or `superseded`, with a line for the journey."""

    status: str
    detail: str


Handler = Callable[[Connection, Context, Any], Outcome]
