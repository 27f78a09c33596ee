"""Fixtures: each test run gets its own PostgreSQL database and RabbitMQ vhost, removed after."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pika
import psycopg
import pytest
from sqlalchemy.engine import Engine

from psop_hub.hub.database import make_engine
from psop_hub.hub.schema import migrate
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


@pytest.fixture(scope="session")
def database_url(run_id: str) -> Iterator[str]:
    """A fresh database for this run (dropped afterwards)."""
    name = f"psop_test_{run_id}"
    with _admin_pg() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    with _admin_pg() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def amqp_url(run_id: str) -> Iterator[str]:
    """A fresh RabbitMQ vhost for this run (deleted afterwards)."""
    try:
        pika.BlockingConnection(pika.URLParameters(f"amqp://guest:guest@{AMQP_HOST}:5672/%2F")).close()
    except Exception as exc:
        pytest.fail(f"RabbitMQ is not reachable at {AMQP_HOST}:5672 ({exc!r}); start it with: {START_RABBIT}")
    vhost = f"psop_test_{run_id}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    yield f"amqp://guest:guest@{AMQP_HOST}:5672/{vhost}"
    _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="session")
def hub_env(database_url: str, amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The HUB_* environment that points a hub at this run's database and vhost."""
    return {
        "HUB_DATABASE_URL": database_url,
        "HUB_AMQP_URL": amqp_url,
        "HUB_DATA_DIR": str(tmp_path_factory.mktemp("hubdata")),
        "HUB_MIN_BACKOFF_MS": "300",
        "HUB_MAX_BACKOFF_MS": "3000",
        "HUB_MAX_RETRIES": "4",
        "HUB_RELAY_AFTER_S": "1",
        "HUB_RELAY_INTERVAL_S": "0.5",
    }


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
