"""The FastAPI application: built from settings by `create_app`, nothing connects at import time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI

from psop_hub.api import health, problems, providers, routes, settlements, soap
from psop_hub.api.metrics import router as metrics_router
from psop_hub.hub.database import make_engine
from psop_hub.hub.deadletters import DeadLetters
from psop_hub.hub.logs import configure_logging
from psop_hub.hub.publishing import Dispatcher, Publisher, Relay
from psop_hub.hub.senders import Authenticator
from psop_hub.hub.settings import Settings, get_settings
from psop_hub.hub.topology import make_broker

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything the routes use, built once per process."""

    settings: Settings
    publisher: Publisher
    dispatcher: Dispatcher
    authenticator: Authenticator
    relay: Relay

    @property
    def engine(self):  # type: ignore[no-untyped-def]
        """The database engine."""
        return self.publisher.engine


def build_services(settings: Settings) -> Services:
    """Build the engine, broker, publisher, relay and authenticator from the settings."""
    engine = make_engine(settings)
    publisher = Publisher(settings, engine, make_broker(settings))
    return Services(
        settings=settings,
        publisher=publisher,
        dispatcher=Dispatcher(
            publisher, threads=settings.publish_threads, linger_ms=settings.publish_linger_ms
        ),
        authenticator=Authenticator(engine),
        relay=Relay(settings, publisher, DeadLetters(settings, engine, publisher.broker)),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """The hub's HTTP application (REST API, health, metrics)."""
    settings = settings or get_settings()
    configure_logging(settings.log_level)  # also in uvicorn's worker processes

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = build_services(settings)
        app.state.services = services
        services.dispatcher.start()
        services.relay.start()
        try:
            yield
        finally:
            services.dispatcher.stop()
            services.relay.stop()
            services.publisher.broker.close()
            services.engine.dispose()

    app = FastAPI(
        title="psop-hub",
        version="1.0",
        description="Integration hub for Finnish service-voucher and purchased-service systems.",
        lifespan=lifespan,
    )
    problems.install(app)
    app.include_router(routes.router)
    app.include_router(settlements.router)
    app.include_router(providers.router)
    app.include_router(soap.router)
    app.include_router(health.router)
    app.include_router(metrics_router)
    return app
