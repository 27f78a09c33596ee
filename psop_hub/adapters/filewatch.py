"""Running the file adapter (`hub files`): watch the inboxes, scan, write pending invoices."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from psop_hub.adapters.filedrop import FileDrop
from psop_hub.hub.publishing import Publisher
from psop_hub.hub.settings import Settings

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


def run_files(settings: Settings) -> None:
    """`hub files`: scan on every inotify wake-up or poll interval until SIGTERM/SIGINT; the file
    in hand is finished first. A relay runs here too, so records are published without an API,
    and new settlements' Finvoice invoices are written to the organisers' outboxes."""
    import signal

    from psop_hub.adapters.invoices import Backlog, write_pending
    from psop_hub.hub.database import make_engine
    from psop_hub.hub.deadletters import DeadLetters
    from psop_hub.hub.publishing import Relay
    from psop_hub.hub.topology import make_broker

    engine = make_engine(settings, pool_size=2)
    publisher = Publisher(settings, engine, make_broker(settings))
    relay = Relay(settings, publisher, DeadLetters(settings, engine, publisher.broker))
    drop = FileDrop(settings, engine, publisher)
    stopping, wake = threading.Event(), threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        stopping.set()
        wake.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    observer = watch(drop.root, wake)
    relay.start()
    backlog = Backlog()
    log.info("file adapter watching %s (%s)", drop.root / "inbox", "inotify" if observer else "polling")
    while not stopping.is_set():
        wake.clear()
        try:
            drop.scan_once()
            write_pending(engine, drop.root, backlog)
        except Exception:
            # The files stay where they are (inbox or claimed in work/): the next round retries.
            log.exception("file scan failed; trying again in %.1fs", settings.files_poll_s)
        wake.wait(settings.files_poll_s)
    if observer is not None:
        observer.stop()
    relay.stop()
    publisher.broker.close()
    engine.dispose()
