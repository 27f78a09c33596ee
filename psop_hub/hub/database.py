"""The database engine and the one place where driver errors become hub errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, InterfaceError

from psop_hub.hub.errors import AlreadyExists, DataRejected, Unavailable
from psop_hub.hub.settings import Settings


def make_engine(settings: Settings, *, pool_size: int | None = None) -> Engine:
    """An engine with a bounded statement time (TimeLimit cannot interrupt a blocking socket read)."""
    return create_engine(
        settings.sqlalchemy_url,
        pool_size=pool_size or settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        # No pre-ping: it costs a round trip per transaction; a connection broken by a database
        # restart fails its statement, which is a transient error (retried or answered 503).
        pool_pre_ping=False,
        pool_recycle=1800,
        # Statement parameters can hold a HETU: they must never reach an error message or a log.
        hide_parameters=True,
        connect_args={
            "options": f"-c statement_timeout={settings.statement_timeout_ms}",
            "connect_timeout": 5,
            "application_name": "psop-hub",
        },
    )


# Server-side states that mean "the server is going away or refuses connections".
_GONE = frozenset({"57P01", "57P02", "57P03", "53300"})
# A statement that may well succeed when tried again: deadlock, serialization, timeout, lock wait.
_TRY_AGAIN = frozenset({"40001", "40P01", "57014", "55P03"})


def driver_error(exc: BaseException) -> BaseException:
    """The driver's error behind SQLAlchemy's wrapper (its class names the condition)."""
    return exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc


def is_unavailable(exc: BaseException) -> bool:
    """True when the connection to the database is gone (not: the data is bad, or a lock clashed)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    driver = driver_error(exc)
    if isinstance(driver, psycopg.InterfaceError):
        return True
    if isinstance(driver, psycopg.OperationalError):
        state = driver.sqlstate
        return state is None or state.startswith("08") or state in _GONE
    return isinstance(exc, InterfaceError)


def is_temporary(exc: BaseException) -> bool:
    """True for database errors worth trying again: an outage, or a statement that clashed or timed out."""
    driver = driver_error(exc)
    return is_unavailable(exc) or (isinstance(driver, psycopg.Error) and driver.sqlstate in _TRY_AGAIN)


def bad_data(exc: BaseException) -> DataRejected | None:
    """A database *data exception* (SQLSTATE class 22: a numeric overflow, a value too long, a
    NUL byte in text) as a permanent error, or None for anything else. Sending the same values
    again would fail the same way: it is bad data, not an outage. The reason names the condition
    only; the driver's text can quote row values."""
    driver = driver_error(exc)
    if isinstance(driver, psycopg.DataError) or (
        isinstance(driver, psycopg.Error) and (driver.sqlstate or "").startswith("22")
    ):
        condition = re.sub(r"(?<!^)([A-Z])", r" \1", type(driver).__name__).lower()
        return DataRejected(
            f"the hub's state cannot hold the message's values ({condition}, SQLSTATE {driver.sqlstate})"
        )
    return None


def unique_violation(exc: BaseException) -> str | None:
    """The name of the unique key (primary key or unique constraint) a statement broke, or None
    when `exc` is no unique violation (SQLSTATE 23505). The names are the naming convention's
    (see `tables.metadata`), so callers compare them with names they know."""
    driver = driver_error(exc)
    if isinstance(driver, psycopg.errors.UniqueViolation):
        return driver.diag.constraint_name or ""
    return None


@contextmanager
def already_exists(*constraints: str, reason: str | None = None) -> Iterator[None]:
    """Translate a unique violation of one of `constraints` raised inside the block into
    `AlreadyExists` (with `reason`, or one naming the key); any other error passes unchanged."""
    try:
        yield
    except (DBAPIError, psycopg.Error) as exc:
        name = unique_violation(exc)
        if name is None or name not in constraints:
            raise
        raise AlreadyExists(reason or f"a row with the same key ({name}) exists already", name) from exc


@contextmanager
def unavailable_on_outage() -> Iterator[None]:
    """Translate a temporary database failure raised inside the block into `Unavailable`."""
    try:
        yield
    except (DBAPIError, psycopg.Error) as exc:
        if is_temporary(exc):
            raise Unavailable("the database is not reachable or busy; try again") from exc
        raise


def raw(conn: Connection) -> psycopg.Cursor[Any]:
    """A psycopg cursor inside the SQLAlchemy connection's transaction, with attribute rows.

    The rule: every statement on the path of every message (the secret look-up; store: accept,
    outbox, inbox, finish, journey; apply: lock order, voucher and order locks, waiting messages;
    the grant and the whole delivery family) is a named raw SQL constant at the top of its
    module, run through this cursor; everything else (other decisions on vouchers, orders,
    approvals and payments, settlements, reads) is SQLAlchemy Core. Measured on this machine, a
    Core statement costs ~0.25 ms of CPU against ~0.08 ms here, and the CPU per message is what
    bounds throughput on two cores.
    """
    return driver(conn).cursor(row_factory=namedtuple_row)


def driver(conn: Connection) -> psycopg.Connection[Any]:
    """The psycopg connection under a SQLAlchemy connection (a server-side cursor is made on it)."""
    found = conn.connection.driver_connection
    assert isinstance(found, psycopg.Connection)
    return found
