"""The migrator: `hub migrate` upgrades the database to the newest Alembic revision (migrations/)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    """An Alembic configuration for the hub's migrations and the given SQLAlchemy URL."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(engine: Engine) -> tuple[str | None, str | None]:
    """Create or upgrade the schema; safe to run concurrently (an advisory lock serialises it).

    Returns the revision before and after, for a one-line report (Alembic's own INFO lines are
    left to HUB_LOG_LEVEL=DEBUG)."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        # Two containers starting at once must not both create the tables.
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7412001)")
        before = MigrationContext.configure(conn).get_current_revision()
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        after = MigrationContext.configure(conn).get_current_revision()
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
