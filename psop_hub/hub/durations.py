"""Durations as operators write them: `7d`, `12h`, `30m`, `45s`, `1d12h`, or plain seconds."""

from __future__ import annotations

import re
from datetime import timedelta

UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")


def parse_duration(text: str) -> timedelta:
    """`7d`, `36h`, `1d12h`, `90m`, `30s` or a number of seconds (`3600`); ValueError otherwise."""
    value = text.strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        return timedelta(seconds=float(value))
    if not value or _PART.sub("", value):
        raise ValueError(f"{text!r} is not a duration: write e.g. 7d, 12h, 30m, 45s or 1d12h")
    return timedelta(seconds=sum(float(n) * UNITS[unit] for n, unit in _PART.findall(value)))


def duration_text(span: timedelta) -> str:
    """A duration the way `parse_duration` reads it, largest units first (`7d`, `1d12h`, `0s`)."""
    seconds = int(span.total_seconds())
    parts = []
    for unit, size in UNITS.items():
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"
