"""Fixtures: each test run gets its own PostgreSQL database and RabbitMQ vhost, removed after."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pika
import psycopg
import pytest
from sqlalchemy.engine import Engine

from psop_hub.hub.database import make_engine
from psop_hub.hub.migrator import migrate
from psop_hub.hub.settings import Settings

PG_HOST = os.environ.get("TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("TEST_PG_USER", "root")
AMQP_HOST = os.environ.get("TEST_AMQP_HOST", "127.0.0.1")
START_PG = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
START_RABBIT = "rabbitmq-server -detached"


def _admin_pg() -> psycopg.Connection:
    try:
        return psycopg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True, connect_timeout=5
        )
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} ({exc}); start it with: {START_PG}")


def _rabbitmqctl(*args: str) -> None:
    if shutil.which("rabbitmqctl") is None:
        pytest.fail("rabbitmqctl is not on PATH: the tests create their own vhost with it (run as root)")
    done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        pytest.fail(
            f"rabbitmqctl {' '.join(args)} failed: {done.stderr.strip()}; start RabbitMQ with: {START_RABBIT}"
        )


@pytest.fixture(scope="session")
def run_id() -> str:
    """A short id unique to this test run."""
    return uuid.uuid4().hex[:10]


@contextmanager
def fresh_database(name: str) -> Iterator[str]:
    """Create a database, yield its URL, drop it."""
    with _admin_pg() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with _admin_pg() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_vhost(name: str) -> Iterator[str]:
    """Create a RabbitMQ vhost for guest, yield its AMQP URL, delete it."""
    try:
        pika.BlockingConnection(pika.URLParameters(f"amqp://guest:guest@{AMQP_HOST}:5672/%2F")).close()
    except Exception as exc:
        pytest.fail(f"RabbitMQ is not reachable at {AMQP_HOST}:5672 ({exc!r}); start it with: {START_RABBIT}")
    _rabbitmqctl("add_vhost", name)
    _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    try:
        yield f"amqp://guest:guest@{AMQP_HOST}:5672/{name}"
    finally:
        _rabbitmqctl("delete_vhost", name)


def hub_environment(database_url: str, amqp_url: str, data_dir: str) -> dict[str, str]:
    """The HUB_* environment for a test hub: its database, its vhost, short retries."""
    return {
        "HUB_DATABASE_URL": database_url,
        "HUB_AMQP_URL": amqp_url,
        "HUB_DATA_DIR": data_dir,
        "HUB_MIN_BACKOFF_MS": "300",
        "HUB_MAX_BACKOFF_MS": "3000",
        "HUB_MAX_RETRIES": "4",
        "HUB_RELAY_AFTER_S": "1",
        "HUB_RELAY_INTERVAL_S": "0.5",
    }


@pytest.fixture(scope="session")
def database_url(run_id: str) -> Iterator[str]:
    """A fresh database for this run's in-process tests (dropped afterwards)."""
    with fresh_database(f"psop_test_{run_id}") as url:
        yield url


@pytest.fixture(scope="session")
def amqp_url(run_id: str) -> Iterator[str]:
    """A fresh RabbitMQ vhost for this run's in-process tests (deleted afterwards)."""
    with fresh_vhost(f"psop_test_{run_id}") as url:
        yield url


@pytest.fixture(scope="session")
def hub_env(database_url: str, amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The HUB_* environment that points a hub at the in-process tests' database and vhost."""
    return hub_environment(database_url, amqp_url, str(tmp_path_factory.mktemp("hubdata")))


@pytest.fixture(scope="session")
def settings(hub_env: dict[str, str]) -> Settings:
    """Settings for in-process integration tests."""
    return Settings(**{k.removeprefix("HUB_").lower(): v for k, v in hub_env.items()})  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[Engine]:
    """An engine on this run's database, migrated to the newest schema."""
    eng = make_engine(settings)
    migrate(eng)
    yield eng
    eng.dispose()
