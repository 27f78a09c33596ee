"""Logging set-up: one format, a filter that masks anything shaped like a HETU, and the levels
of the libraries the hub runs on.

Exceptions from drivers and libraries can quote row values; the filter runs on the handler, so
every logger's lines (ours, Dramatiq's, uvicorn's, SQLAlchemy's) and their tracebacks pass it.

Levels mean the same everywhere: ERROR, the hub itself failed (a bug, a component that crashed)
and an operator must look now; WARNING, something needs attention but the hub handles it (a
message ended failed, a dependency is away and the hub waits); INFO, what a component is doing
(one line per component at start-up, settlements, invoices); DEBUG, the rest. pika reports a lost
connection as an ERROR with its caller's stack; the hub reconnects on its own, so such a line is
a WARNING of one line, and none at all where the hub closes a connection it knows to be dead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from psop_hub.hub.privacy import mask_text as mask

ACCESS_LOGGER = "psop_hub.access"
# Libraries whose INFO lines are start-up chatter (Alembic's "Context impl" and plugin set-up,
# uvicorn's four lines per process): shown only at HUB_LOG_LEVEL=DEBUG.
CHATTY = ("alembic", "uvicorn", "uvicorn.error")
_quiet = threading.local()


class HetuFilter(logging.Filter):
    """Masks HETUs in the message and in the traceback of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drops it."""
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        return True


class PikaFilter(logging.Filter):
    """pika's connection errors as one-line warnings (DEBUG inside `quiet_pika`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Demote and shorten pika's ERROR records; drop them while the hub closes connections."""
        if not record.name.startswith("pika") or record.levelno < logging.WARNING:
            return True
        if getattr(_quiet, "depth", 0):
            return logging.getLogger().isEnabledFor(logging.DEBUG) and _demote(record, logging.DEBUG)
        return _demote(record, min(record.levelno, logging.WARNING))


def _demote(record: logging.LogRecord, level: int) -> bool:
    # pika appends "Caller's stack:" and a formatted stack to the message itself.
    first = record.getMessage().split("; Caller's stack", 1)[0].split("\n", 1)[0]
    record.msg, record.args = first, ()
    record.exc_info, record.exc_text, record.stack_info = None, None, None
    record.levelno, record.levelname = level, logging.getLevelName(level)
    return True


@contextmanager
def quiet_pika() -> Iterator[None]:
    """In this thread, pika's complaints are DEBUG lines: the hub is closing what may be dead."""
    _quiet.depth = getattr(_quiet, "depth", 0) + 1
    try:
        yield
    finally:
        _quiet.depth -= 1


def configure_logging(level: str) -> None:
    """Log to stderr in one format through the HETU filter (safe to call more than once)."""
    root = logging.getLogger()
    if not any(isinstance(f, HetuFilter) for h in root.handlers for f in h.filters):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(PikaFilter())
        handler.addFilter(HetuFilter())
        root.addHandler(handler)
    root.setLevel(level.upper())
    debug = root.isEnabledFor(logging.DEBUG)
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.NOTSET if debug else logging.WARNING)
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.INFO)
    logging.getLogger("pika").setLevel(logging.WARNING)
