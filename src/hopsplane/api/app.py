"""create_app(): the FastAPI application, built from settings with no import-time state."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request, Response
from starlette.routing import Match

from hopsplane import __version__
from hopsplane.api.errors import install_error_handlers
from hopsplane.api.routers import health, usage
from hopsplane.config import Settings
from hopsplane.db.engine import Database
from hopsplane.observability import Metrics

log = structlog.get_logger("hopsplane.http")


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    """Build the app. ``database`` defaults to one built from ``settings`` (the embedded
    server when HOPSPLANE_DATABASE_URL is unset); the caller owns a database it passes in."""
    settings = settings or Settings()
    owns_database = database is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if owns_database:
            app.state.database = Database.from_settings(settings)
        yield
        if owns_database:
            await app.state.database.adispose()

    app = FastAPI(
        title="hopsplane",
        version=__version__,
        description="Control plane of the managed Hopsworks service.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    if database is not None:
        app.state.database = database

    install_error_handlers(app)
    app.middleware("http")(_request_context)
    app.include_router(health.router)
    app.include_router(usage.router)
    return app


async def _request_context(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Request id (taken from X-Request-ID when sane, else new), access log and metrics."""
    incoming = request.headers.get("x-request-id", "")
    sane = 0 < len(incoming) <= 128 and incoming.isprintable()
    request_id = incoming if sane else uuid.uuid4().hex
    request.state.request_id = request_id
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await call_next(request)
        status = response.status_code
        response.headers["X-Request-ID"] = request_id
        return response
    finally:
        elapsed = time.perf_counter() - started
        route = _route_template(request)
        metrics: Metrics = request.app.state.metrics
        metrics.requests.labels(route, request.method, str(status)).inc()
        metrics.latency.labels(route, request.method).observe(elapsed)
        log.info(
            "request",
            method=request.method,
            route=route,
            status=status,
            duration_ms=round(elapsed * 1000, 2),
        )
        structlog.contextvars.unbind_contextvars("request_id")


def _route_template(request: Request) -> str:
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is Match.FULL:
            return str(getattr(route, "path", request.url.path))
    return "<unmatched>"
