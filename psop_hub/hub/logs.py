"""Logging set-up: one format, and a filter that masks anything shaped like a HETU.

Exceptions from drivers and libraries can quote row values; the filter runs on the handler, so
every logger's lines (ours, Dramatiq's, uvicorn's, SQLAlchemy's) and their tracebacks pass it.
"""

from __future__ import annotations

import logging

from psop_hub.hub.privacy import mask_text as mask


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


def configure_logging(level: str) -> None:
    """Log to stderr in one format through the HETU filter (safe to call more than once)."""
    root = logging.getLogger()
    if not any(isinstance(f, HetuFilter) for h in root.handlers for f in h.filters):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(HetuFilter())
        root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("pika").setLevel(logging.WARNING)
