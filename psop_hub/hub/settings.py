"""The hub's settings: one class, read from `HUB_*` environment variables, validated at start-up."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from psop_hub.hub.durations import parse_duration


class Settings(BaseSettings):
    """Every setting the hub reads; names are the environment variables without the `HUB_` prefix."""

    model_config = SettingsConfigDict(env_prefix="HUB_", extra="ignore")

    amqp_url: str = "amqp://guest:guest@localhost:5672/%2F"
    # The AMQP heartbeat timeout proposed to RabbitMQ, unless the URL sets `heartbeat=` itself;
    # a thread's connection unused for half of it is replaced at its next use (hub/topology.py).
    # 0 turns heartbeats off (not advised: a dead peer is then noticed only by TCP).
    amqp_heartbeat_s: int = Field(default=30, ge=0, le=3600)
    database_url: str = "postgresql://root@localhost:5432/psop_hub"
    data_dir: Path = Path("./data")
    http_host: str = "0.0.0.0"  # noqa: S104 - a container's API must listen beyond loopback
    http_port: int = Field(default=8000, ge=1, le=65535)

    queue_name: str = "psop.apply"
    # Quorum queues are replicated and support a delivery limit against poison messages.
    queue_type: str = Field(default="quorum", pattern="^(quorum|classic)$")
    # How many times RabbitMQ redelivers one message after crashes before dead-lettering it.
    delivery_limit: int = Field(default=20, ge=1)

    worker_processes: int = Field(default=2, ge=1, le=32)
    # Threads per worker process: more let batches queue behind each other's voucher locks (the
    # work is CPU-bound on the GIL), measured slower and with lock waits past the statement timeout.
    worker_threads: int = Field(default=4, ge=1, le=64)
    api_workers: int = Field(default=1, ge=1, le=32)
    # Threads of one API process that run the requests' blocking work (database, secrets): the
    # process's connection pool holds one connection for each of them, the publishing threads and
    # the relay, so that no request waits for a connection or opens one of its own.
    api_threads: int = Field(default=16, ge=1, le=200)
    # Group commit at intake (hub.groupcommit): most messages of concurrent requests stored in one
    # statement and commit, threads that commit groups, and messages that may wait for a group
    # (beyond that a request is answered 503 with Retry-After at once).
    intake_group: int = Field(default=100, ge=1, le=1000)
    intake_threads: int = Field(default=2, ge=1, le=16)
    intake_queue: int = Field(default=2000, ge=1, le=100_000)
    # Retries of a transient failure, with exponential backoff bounded far below
    # RabbitMQ's 30-minute consumer_timeout (a delayed message waits unacked in a worker).
    max_retries: int = Field(default=8, ge=0, le=50)
    min_backoff_ms: int = Field(default=500, ge=10)
    max_backoff_ms: int = Field(default=60_000, ge=100, le=600_000)
    # A message stays "unpublished" this long before the relay sends it again.
    # Threads that publish stored messages, each waiting for its own confirms.
    publish_threads: int = Field(default=2, ge=1, le=64)
    # How long a publishing thread waits for more ids to share one AMQP message with.
    publish_linger_ms: int = Field(default=5, ge=0, le=1000)
    # Most hub_ids one AMQP message carries to a worker (a batch is applied one by one).
    publish_batch: int = Field(default=100, ge=1, le=500)
    relay_after_s: float = Field(default=5.0, gt=0)
    relay_interval_s: float = Field(default=1.0, gt=0)
    # A published message still accepted/retrying this long after its last step is sent again
    # (its AMQP message was lost); well above the longest backoff plus the actor time limit.
    stale_after_s: float = Field(default=600.0, gt=0)

    # The file drop: scan interval (inotify wakes it sooner), records per stored batch, and how
    # long a claimed file may go untouched before another adapter takes it over.
    files_poll_s: float = Field(default=2.0, gt=0)
    files_batch: int = Field(default=500, ge=1, le=10_000)
    files_lease_s: float = Field(default=60.0, gt=0)
    files_enabled: bool = True
    # Most bytes and records one batch file may hold; a file over either is refused whole (its
    # receipt says which limit), before any of its records is stored. Each XML record is held to
    # max_xml_nodes, as a SOAP message is.
    files_max_bytes: int = Field(default=100 * 1024 * 1024, ge=1024)
    files_max_records: int = Field(default=100_000, ge=1)
    statement_timeout_ms: int = Field(default=15_000, ge=100)
    db_pool_size: int = Field(default=10, ge=1, le=200)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # Deepest nesting of objects and arrays a JSON body may have (a message needs 3).
    max_json_depth: int = Field(default=32, ge=4, le=500)
    # HTTP connections of one API process: request headers over max_header_bytes are answered
    # 431; a client must send a request's headers within header_timeout_s and its body within
    # body_timeout_s (408); an idle keep-alive connection is closed after keep_alive_s; beyond
    # api_max_connections open connections (or requests in progress) a request is answered 503.
    max_header_bytes: int = Field(default=32_768, ge=4096, le=1_048_576)
    header_timeout_s: float = Field(default=10.0, gt=0, le=600)
    body_timeout_s: float = Field(default=30.0, gt=0, le=600)
    keep_alive_s: int = Field(default=5, ge=1, le=600)
    api_max_connections: int = Field(default=1000, ge=10, le=100_000)
    # SOAP: the address the WSDL gives (https://hub.example.fi); unset, the request's own
    # (its Host header), which a client can set to anything.
    public_url: str | None = None
    # Most XML elements and attributes, together, one SOAP message may hold (a call needs ~40).
    max_xml_nodes: int = Field(default=10_000, ge=100, le=10_000_000)
    # Deepest nesting of XML elements, the root being level 1, of a SOAP message (a call needs 6:
    # Envelope, Body, operation, record, Client, Hetu) and of a batch file (a record needs 4).
    # libxml2 itself refuses more than 256 levels.
    max_xml_depth: int = Field(default=32, ge=3, le=256)
    # Requests per sender per minute, over all API replicas (PostgreSQL counts them); over it:
    # 429 with Retry-After (SOAP: a Client fault). 0: no limit (the default, so that benchmarks
    # and bulk loads are not throttled unless an operator chooses to).
    rate_limit_per_minute: int = Field(default=0, ge=0)
    # Client secrets (`hub clients add` / `rotate`, docs/authorization.md): a new secret works for
    # secret_lifetime; after `hub clients rotate` the old one keeps working for
    # secret_rotation_grace (or the command's --grace), then is refused; from secret_expiry_warning
    # before a client's newest secret expires, the API logs a WARNING when the client uses it and
    # /metrics counts the client in hub_client_secrets_expiring. Durations: 365d, 12h, 30m, 45s.
    secret_lifetime: timedelta = timedelta(days=365)
    secret_rotation_grace: timedelta = timedelta(days=7)
    secret_expiry_warning: timedelta = timedelta(days=30)
    # /metrics carries figures by client and by message type: "token" (the default) answers only
    # a bearer secret of an admin client or metrics_token; "open" answers anyone (for a network
    # where only the scraper can reach the API replicas).
    metrics_access: str = Field(default="token", pattern="^(token|open)$")
    # A scrape token of its own, so that Prometheus needs no admin secret (at least 32 characters).
    metrics_token: str | None = None
    log_level: str = "INFO"
    # One INFO line per HTTP request on the logger psop_hub.access: method, path (query values
    # left out), status, duration and the authenticated sender's name. Off by default.
    access_log: bool = False
    # Graceful stop: requests in flight (API) and messages in hand (worker) get this long after
    # SIGTERM; a container's stop_grace_period must be longer (docker-compose.yml).
    api_shutdown_timeout_s: int = Field(default=20, ge=1, le=600)
    worker_shutdown_timeout_s: int = Field(default=30, ge=1, le=600)

    # /metrics (hub/monitoring.py): the longest a scrape waits for the database's quick counts
    # and for the broker; below `metrics_exact_rows` messages (the planner's estimate) every
    # message is counted on each scrape, above it the resolved ones at most every
    # `metrics_totals_ttl_s` per API process (a count over the whole table).
    metrics_timeout_s: float = Field(default=2.0, gt=0, le=30)
    metrics_exact_rows: int = Field(default=200_000, ge=0)
    metrics_totals_ttl_s: float = Field(default=300.0, gt=0)

    # Monthly settlement (`hub scheduler`): from this day and hour of a month (Europe/Helsinki)
    # the previous month is settled; day 28 at most, so that every month has it.
    settle_day: int = Field(default=1, ge=1, le=28)
    settle_hour: int = Field(default=2, ge=0, le=23)
    scheduler_enabled: bool = True
    # Re-checking is cheap and harmless (a run settles only what is left), so it catches up soon.
    scheduler_interval_s: float = Field(default=300.0, gt=0)
    # Retention (hub/purge.py): the scheduler removes resolved messages (payloads with HETUs)
    # last changed more than this many days ago, once a day, and the file adapter removes
    # archived and refused batch files as old; failures an admin may still replay stay. 0 keeps
    # everything (then only `hub purge` removes). 400 days: a year of reconciliation, with margin.
    retention_days: int = Field(default=400, ge=0)

    # The admin page (`/admin/`): a session ends after this many minutes without a request, and
    # after admin_session_max_minutes in any case. The cookie is Secure on HTTPS requests
    # ("auto": the request's scheme or X-Forwarded-Proto), on every request ("always") or never.
    admin_session_minutes: int = Field(default=480, ge=1, le=7 * 24 * 60)
    admin_session_max_minutes: int = Field(default=24 * 60, ge=1, le=30 * 24 * 60)
    admin_cookie_secure: str = Field(default="auto", pattern="^(auto|always|never)$")

    @field_validator("secret_lifetime", "secret_rotation_grace", "secret_expiry_warning", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        # "7d", "12h", "30m", "45s", "1d12h" or seconds; pydantic reads ISO 8601 ("P7D") itself.
        if isinstance(value, str) and not value.strip().upper().startswith("P"):
            return parse_duration(value)
        return value

    @field_validator("secret_lifetime")
    @classmethod
    def _positive_lifetime(cls, value: timedelta) -> timedelta:
        if value.total_seconds() <= 0:
            raise ValueError("a secret's lifetime must be longer than 0")
        return value

    @field_validator("secret_rotation_grace", "secret_expiry_warning")
    @classmethod
    def _not_negative(cls, value: timedelta) -> timedelta:
        if value.total_seconds() < 0:
            raise ValueError("must not be negative")
        return value

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if len(value.strip()) < 32:
            raise ValueError("must be at least 32 random characters (e.g. secrets.token_urlsafe(32))")
        return value.strip()

    @field_validator("database_url")
    @classmethod
    def _plain_postgres_url(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme not in ("postgresql", "postgres", "postgresql+psycopg"):
            raise ValueError("must be a postgresql://user@host:port/db URL")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError("must be an http:// or https:// URL without query (https://hub.example.fi)")
        return value.strip().rstrip("/")

    @field_validator("amqp_url")
    @classmethod
    def _amqp_url(cls, value: str) -> str:
        # A comma-separated list names the nodes of a cluster; connections try them in turn.
        for url in value.split(","):
            if urlsplit(url.strip()).scheme not in ("amqp", "amqps"):
                raise ValueError("must be amqp:// or amqps:// URLs, separated by commas")
        return value

    @property
    def amqp_urls(self) -> list[str]:
        """The broker URLs (one per cluster node), in the order given."""
        return [url.strip() for url in self.amqp_url.split(",")]

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL with the psycopg 3 driver the hub uses."""
        rest = self.database_url.split("://", 1)[1]
        return f"postgresql+psycopg://{rest}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once from the environment on first use."""
    return Settings()
