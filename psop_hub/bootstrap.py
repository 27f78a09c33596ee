"""The composition root: builds the hub's runtime (engine, broker, publishing, services) from the
settings. Nothing else in the hub creates an engine or a broker, and nothing connects at import.

Every process is wired here: `processes.py` runs them, `cli.py` parses the command line.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import ValidationError
from sqlalchemy.engine import Engine

from psop_hub.api.deps import Services
from psop_hub.hub.database import make_engine
from psop_hub.hub.deadletters import DeadLetters
from psop_hub.hub.groupcommit import GroupCommit
from psop_hub.hub.publishing import Dispatcher, Publisher, Relay
from psop_hub.hub.replayjobs import ReplayRunner
from psop_hub.hub.senders import Authenticator
from psop_hub.hub.settings import Settings, get_settings
from psop_hub.hub.topology import HubBroker, make_broker


class ConfigurationError(SystemExit):
    """The environment's HUB_* settings are invalid; the message names each one."""


def load_settings() -> Settings:
    """The process's settings, or `ConfigurationError` naming every invalid HUB_* variable."""
    try:
        return get_settings()
    except ValidationError as exc:
        problems = "; ".join(f"HUB_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"hub: invalid configuration: {problems}") from None


@contextmanager
def engine_for(settings: Settings, pool_size: int = 1) -> Iterator[Engine]:
    """A database engine for the block (a command, a process), disposed at the end."""
    engine = make_engine(settings, pool_size=pool_size)
    try:
        yield engine
    finally:
        engine.dispose()


def broker_for(settings: Settings) -> HubBroker:
    """The process's Dramatiq broker (it connects on first use, per thread)."""
    return make_broker(settings)


def publishing(settings: Settings, engine: Engine) -> tuple[Publisher, Relay]:
    """The publisher of stored messages and the relay that resends unconfirmed ones (with the
    dead letters it moves back into the store, and the bulk replay jobs it works)."""
    publisher = Publisher(settings, engine, broker_for(settings))
    dead_letters = DeadLetters(settings, engine, publisher.broker)
    return publisher, Relay(settings, publisher, dead_letters, jobs=ReplayRunner(engine, publisher))


def api_services(settings: Settings) -> Services:
    """What the HTTP API uses: engine, publisher, dispatcher, relay and the authenticator."""
    # A connection for every thread that uses one: requests, group commits, publishing, the relay.
    engine = make_engine(
        settings, pool_size=settings.api_threads + settings.intake_threads + settings.publish_threads + 1
    )
    publisher, relay = publishing(settings, engine)
    authenticator = Authenticator(engine, settings.secret_expiry_warning)
    dispatcher = Dispatcher(publisher, threads=settings.publish_threads, linger_ms=settings.publish_linger_ms)
    return Services(
        settings=settings,
        publisher=publisher,
        dispatcher=dispatcher,
        authenticator=authenticator,
        relay=relay,
        intake=GroupCommit(
            engine,
            authenticator,
            stored=dispatcher.submit,
            rate_limit=settings.rate_limit_per_minute,
            group=settings.intake_group,
            waiting=settings.intake_queue,
            threads=settings.intake_threads,
        ),
    )
