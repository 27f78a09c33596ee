"""Finnish time and calendar months: where settlement months begin and end, and how they are named."""

from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

__all__ = ["HELSINKI", "first_of_month", "helsinki_now", "next_month", "parse_month", "previous_month"]

HELSINKI = ZoneInfo("Europe/Helsinki")
_MONTH = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")


def helsinki_now() -> datetime:
    """The current time in Finland."""
    return datetime.now(HELSINKI)


def first_of_month(day: date) -> date:
    """The first day of `day`'s month."""
    return day.replace(day=1)


def next_month(day: date) -> date:
    """The first day of the month after `day`'s."""
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def previous_month(day: date) -> date:
    """The first day of the month before `day`'s."""
    return date(day.year - (day.month == 1), (day.month - 2) % 12 + 1, 1)


def parse_month(value: str) -> date:
    """`YYYY-MM` as the first day of that month; ValueError otherwise."""
    match = _MONTH.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"{value!r} is not a month in the form YYYY-MM, e.g. 2026-11")
    year = int(match.group(1))
    if year < 1:  # the calendar has no year 0 (date() refuses it)
        raise ValueError(f"{value!r} is not a month: years start at 0001")
    return date(year, int(match.group(2)), 1)
