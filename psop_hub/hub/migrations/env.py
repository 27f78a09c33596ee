"""Alembic environment: runs the hub's migrations against the connection `hub migrate` provides."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from psop_hub.hub.tables import metadata

config = context.config
target_metadata = metadata


def run_migrations_online() -> None:
    """Run the migrations on a live connection (given by the caller, or built from the URL)."""
    connection = config.attributes.get("connection")
    if connection is not None:
        # One transaction per revision (hub.migrator): a revision may leave its transaction for a
        # concurrent index build.
        context.configure(
            connection=connection, target_metadata=target_metadata, transaction_per_migration=True
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(
        config.get_section(config.config_ini_section) or {}, prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
