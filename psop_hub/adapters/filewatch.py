"""Waking the file adapter (`hub files`, run in `psop_hub.processes`) when a file arrives."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def watch(root: Path, wake: threading.Event) -> Any:
    """Wake the scan loop on inotify events where watchdog can have them; None means: poll only."""
    try:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer
    except ImportError:
        return None

    class _Wake(FileSystemEventHandler):
        def on_any_event(self, event: Any) -> None:
            wake.set()

    inbox = root / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    observer = Observer()
    observer.schedule(_Wake(), str(inbox), recursive=True)
    try:
        observer.start()
    except OSError:
        log.warning("no inotify here: polling %s", inbox)
        return None
    return observer
