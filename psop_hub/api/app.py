"""The FastAPI application, built by `create_app` from the services the composition root made.

Nothing connects at import time: the services connect when the application starts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import to_thread
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline

from psop_hub.api import (
    admin,
    adminpage,
    apidocs,
    health,
    messages,
    openapi,
    parties,
    problems,
    providers,
    settlements,
    soap,
    vouchers,
)
from psop_hub.api.accesslog import AccessLog
from psop_hub.api.deps import Services
from psop_hub.api.fastlane import Endpoint, FastLane
from psop_hub.api.metrics import router as metrics_router


def create_app(services: Services) -> FastAPI:
    """The hub's HTTP application (REST API, SOAP, admin page, health, metrics) over these services."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The request threads (run_in_threadpool), as many as the engine has connections for them.
        to_thread.current_default_thread_limiter().total_tokens = services.settings.api_threads
        services.start()
        try:
            yield
        finally:
            services.stop()

    # FastAPIOffline: /docs and /redoc load Swagger UI and ReDoc from the hub (the package ships the
    # assets), never from a CDN, so they work on a network without internet. No validator badge:
    # Swagger UI would fetch it from outside.
    app = FastAPIOffline(
        title="psop-hub",
        version="1.0",
        description="Integration hub for Finnish service-voucher and purchased-service systems.",
        lifespan=lifespan,
        static_url="/docs-assets",
        swagger_ui_parameters={"validatorUrl": None},
    )
    app.state.services = services
    # Innermost of the hub's middleware (added first): the routes every message takes, answered
    # without the router (api/fastlane.py); the exception handlers problems.install adds apply.
    hot = {**_routes_of(messages.router, messages.post_message), **_routes_of(soap.router, soap.soap)}
    app.add_middleware(FastLane, routes=hot, handlers=app.exception_handlers)
    problems.install(app)
    # The two routes every message comes through first: a request is matched against the routes
    # in this order (and SOAP is left out of the OpenAPI document, so the order does not show).
    app.include_router(messages.router)
    app.include_router(soap.router)
    app.include_router(admin.router)
    app.include_router(vouchers.router)
    app.include_router(settlements.router)
    app.include_router(providers.router)
    app.include_router(parties.router)
    app.include_router(health.router)
    app.include_router(metrics_router)
    adminpage.install(app)
    apidocs.install(app)
    openapi.install(app)
    if services.settings.access_log:
        app.add_middleware(AccessLog)  # outermost: it sees the status and time of every answer
    return app


def _routes_of(router: APIRouter, endpoint: Endpoint) -> dict[tuple[str, str], Endpoint]:
    """(method, path) of the router's route to `endpoint`, as the router registered it."""
    return {
        (method, route.path): endpoint
        for route in router.routes
        if isinstance(route, APIRoute) and route.endpoint is endpoint
        for method in route.methods or ()
    }
