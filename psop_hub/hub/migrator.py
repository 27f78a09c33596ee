"""The migrator: `hub migrate` upgrades the database to the newest Alembic revision (migrations/).

Each revision runs in a transaction of its own, so that one may build an index with
`CREATE INDEX CONCURRENTLY` (outside any transaction, in Alembic's `autocommit_block`) while the
hub goes on writing. Two migrators started at once (two containers) are serialised by a
session-level advisory lock, which the waiting one *polls*: a session blocked in
`pg_advisory_lock` holds a snapshot, and a concurrent index build waits for every older snapshot
of its database, so the two would wait for each other.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).with_name("migrations")
LOCK = 7412001
POLL_S = 0.1


def alembic_config(url: str) -> Config:
    """An Alembic configuration for the hub's migrations and the given SQLAlchemy URL."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@contextmanager
def _locked(conn: Connection) -> Iterator[None]:
    """Hold the migrator's advisory lock for the block, outside any transaction."""
    while not conn.exec_driver_sql("SELECT pg_try_advisory_lock(%s)", (LOCK,)).scalar_one():
        conn.rollback()  # no transaction, so no snapshot, while waiting
        time.sleep(POLL_S)
    conn.commit()
    try:
        yield
    finally:
        try:
            conn.rollback()
            conn.exec_driver_sql("SELECT pg_advisory_unlock(%s)", (LOCK,))
            conn.commit()
        except Exception:
            # The lock dies with the session: never hand a connection back to the pool holding it.
            conn.invalidate()
            raise


def _revision(conn: Connection) -> str | None:
    revision = MigrationContext.configure(conn).get_current_revision()
    conn.rollback()
    return revision


def migrate(engine: Engine) -> tuple[str | None, str | None]:
    """Create or upgrade the schema; safe to run concurrently (an advisory lock serialises it).

    Returns the revision before and after, for a one-line report (Alembic's own INFO lines are
    left to HUB_LOG_LEVEL=DEBUG)."""
    return _run(engine, command.upgrade, "head")


def downgrade(engine: Engine, revision: str) -> tuple[str | None, str | None]:
    """Take the schema back to `revision` (tests, and an operator undoing a release)."""
    return _run(engine, command.downgrade, revision)


def _run(
    engine: Engine, direction: Callable[[Config, str], None], revision: str
) -> tuple[str | None, str | None]:
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.connect() as conn, _locked(conn):
        before = _revision(conn)
        config.attributes["connection"] = conn
        direction(config, revision)
        conn.commit()
        after = _revision(conn)
    return before, after


def ensure_database(engine: Engine) -> bool:
    """Create the configured database if it does not exist yet; True if it was created."""
    from sqlalchemy import create_engine, text

    name = engine.url.database
    admin = create_engine(engine.url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
            if exists:
                return False
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            return True
    finally:
        admin.dispose()
