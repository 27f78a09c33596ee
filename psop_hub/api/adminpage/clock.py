"""Times on the admin page: shown in Helsinki time in the page's language, and the search form's
local date-times read as Helsinki time."""

from __future__ import annotations

from datetime import datetime

from psop_hub.hub.calendar import HELSINKI
from psop_hub.hub.errors import InvalidInput

__all__ = ["from_form", "shown", "to_form"]


def shown(value: datetime | str | None, lang: str) -> str:
    """`value` (aware, or ISO 8601 text with an offset) as Helsinki wall-clock time:
    `2026-11-02 08:15:00 EET` in English, `2.11.2026 klo 8.15.00` in Finnish."""
    if value is None or value == "":
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        raise ValueError("a time without an offset cannot be shown in Helsinki time")
    local = moment.astimezone(HELSINKI)
    if lang == "fi":
        return f"{local.day}.{local.month}.{local.year} klo {local.hour}.{local:%M.%S}"
    return f"{local:%Y-%m-%d %H:%M:%S %Z}"


def from_form(field: str, value: str | None) -> datetime | None:
    """A search form's `datetime-local` value (`2026-11-02T08:15`), meant as Helsinki time, as an
    aware datetime; a value that carries its own offset keeps it. None for an empty field."""
    if value is None or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(field, "expected a date and time such as 2026-11-02T08:15") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=HELSINKI)


def to_form(value: datetime | None) -> str:
    """An aware datetime as a `datetime-local` value in Helsinki time (the inverse of `from_form`)."""
    return "" if value is None else f"{value.astimezone(HELSINKI):%Y-%m-%dT%H:%M}"
