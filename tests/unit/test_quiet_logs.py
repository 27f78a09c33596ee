"""The log's levels and shapes: pika's connection errors become one-line warnings (nothing while
the hub closes a dead connection), start-up chatter waits for DEBUG, the access line hides query
values, and the hub's connection URL gets its heartbeat unless it names one."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from psop_hub.api.accesslog import request_line
from psop_hub.hub.logs import HetuFilter, configure_logging, quiet_pika
from psop_hub.hub.topology import with_defaults


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """What the hub's configured handler writes, at INFO."""
    configure_logging("INFO")
    handler = next(
        h for h in logging.getLogger().handlers if any(isinstance(f, HetuFilter) for f in h.filters)
    )
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        yield stream
    finally:
        handler.setStream(previous)


STACK = (
    "_AsyncBaseTransport._produce() failed, aborting connection: error=BrokenPipeError(32, 'Broken pipe');"
    ' sock=<socket>; Caller\'s stack:\nTraceback (most recent call last):\n  File "x.py", line 1\n'
)


def test_a_pika_error_is_a_one_line_warning(output: io.StringIO) -> None:
    logging.getLogger("pika.adapters.utils.io_services_utils").error(STACK)
    lines = output.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert " WARNING pika.adapters.utils.io_services_utils: _AsyncBaseTransport._produce() failed" in lines[0]
    assert "Traceback" not in output.getvalue() and "Caller's stack" not in output.getvalue()


def test_pika_is_silent_while_the_hub_closes_a_dead_connection(output: io.StringIO) -> None:
    with quiet_pika():
        logging.getLogger("pika.adapters.blocking_connection").error("Unexpected connection close detected")
        logging.getLogger("psop_hub.test").warning("the hub's own lines still show")
    assert output.getvalue().count("\n") == 1
    assert "the hub's own lines still show" in output.getvalue()
    logging.getLogger("pika.adapters.base_connection").error("connection_lost: StreamLostError")
    assert "WARNING pika.adapters.base_connection: connection_lost" in output.getvalue()


def test_start_up_chatter_of_libraries_waits_for_debug(output: io.StringIO) -> None:
    logging.getLogger("alembic.runtime.plugins").info("setup plugin alembic.autogenerate.schemas")
    logging.getLogger("uvicorn.error").info("Started server process [1]")
    logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
    lines = output.getvalue().splitlines()
    assert len(lines) == 1 and "WARNING uvicorn.error: Invalid HTTP request received." in lines[0], lines
    configure_logging("DEBUG")
    try:
        logging.getLogger("alembic.runtime.migration").info("Context impl PostgresqlImpl.")
        assert "Context impl PostgresqlImpl." in output.getvalue()
    finally:
        configure_logging("INFO")


def test_the_access_line_keeps_query_names_never_values() -> None:
    scope = {"method": "GET", "path": "/api/v1/messages", "query_string": b"message_id=131052-308T&x=1&x=2"}
    assert request_line(scope) == "GET /api/v1/messages?message_id=*&x=*"
    path = {"method": "GET", "path": "/api/v1/vouchers/2077474-0/131052-308t", "query_string": b""}
    assert request_line(path) == "GET /api/v1/vouchers/2077474-0/131052-****"
    long = {
        "method": "POST",
        "path": "/" + "a" * 1000,
        "query_string": b"&".join(b"k%d=v" % i for i in range(50)),
    }
    line = request_line(long)
    assert len(line) < 500 and line.endswith("&…") and "=v" not in line


def test_the_heartbeat_is_added_unless_the_url_names_one() -> None:
    assert with_defaults("amqp://h/v", 30) == "amqp://h/v?heartbeat=30&blocked_connection_timeout=10"
    assert (
        with_defaults("amqp://h/v?heartbeat=5", 30) == "amqp://h/v?heartbeat=5&blocked_connection_timeout=10"
    )
    both = "amqp://h/v?heartbeat=5&blocked_connection_timeout=3"
    assert with_defaults(both, 30) == both
