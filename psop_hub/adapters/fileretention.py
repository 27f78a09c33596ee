"""Retention of the file drop's copies: batch files are kept as sent (HETUs and all) in
`archive/<client>/YYYY-MM-DD/` and `error/<client>/`, and removed once older than
`HUB_RETENTION_DAYS`, the same retention the scheduler applies to stored messages.

The file adapter calls `remove_old_files` once a day. An archive folder goes by the date in its
name (the day the file was read), a refused file by its modification time (when it was moved
there). Receipts (`outbox/<client>/receipts/`) stay: they hold no HETU (masked) and are the
sender's to fetch and remove.
"""

from __future__ import annotations

import logging
import shutil
import time
from datetime import date, timedelta
from pathlib import Path

log = logging.getLogger(__name__)

EVERY_S = 24 * 3600.0  # how often the file adapter applies the retention


def remove_old_files(root: Path, retention_days: int, today: date | None = None) -> int:
    """Remove archived batch files of days more than `retention_days` before `today`, and refused
    files not touched for as long; returns how many files went. 0 days: nothing is removed."""
    if retention_days < 1:
        return 0
    today = today or date.today()
    cutoff_day = today - timedelta(days=retention_days)
    cutoff_time = time.time() - retention_days * 86400
    removed = 0
    for day_dir in sorted((root / "archive").glob("*/*")):
        try:
            day = date.fromisoformat(day_dir.name)
        except ValueError:
            continue  # not a folder the adapter made: left alone
        if day_dir.is_dir() and day < cutoff_day:
            removed += sum(1 for p in day_dir.iterdir() if p.is_file())
            shutil.rmtree(day_dir, ignore_errors=True)
    for path in sorted((root / "error").glob("*/*")):
        if path.is_file() and path.stat().st_mtime < cutoff_time:
            path.unlink(missing_ok=True)
            removed += 1
    if removed:
        log.info("retention (%d days): removed %d archived or refused batch files", retention_days, removed)
    return removed
