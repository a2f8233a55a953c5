"""create_app(): the FastAPI application, built from settings with no import-time state."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import anyio.to_thread
from fastapi import Depends, FastAPI

from hopsplane import __version__
from hopsplane.api.docs import install_docs
from hopsplane.api.errors import install_error_handlers
from hopsplane.api.routers import (
    account,
    admin_credits,
    admin_users,
    api_keys,
    audit,
    auth,
    auto_topup,
    budgets,
    clusters,
    health,
    me,
    organizations,
    payments,
    team,
    usage,
    webhooks,
)
from hopsplane.api.serving import OPERATIONS_PATHS, Admission, ServingMiddleware
from hopsplane.composition.hooks import build_account_hooks
from hopsplane.config import Settings
from hopsplane.db.engine import Database
from hopsplane.http.deps import API_KEY_SCOPE
from hopsplane.http.identity import TokenAuthenticator
from hopsplane.http.query import single_query_values
from hopsplane.http.session_cookie import session_signer
from hopsplane.integrations.auth0 import build_identity
from hopsplane.integrations.email import build_mailer
from hopsplane.integrations.stripe import build_stripe
from hopsplane.money import amount_pattern
from hopsplane.observability import Metrics, configure_logging
from hopsplane.usage.combiner import BatchCombiner
from hopsplane.web import rendering
from hopsplane.web.pages import ROUTERS as CONSOLE_ROUTERS
from hopsplane.web.security import install_security_headers

DEV_ISSUER_URL_ENV = "HOPSPLANE_SERVE_DEV_ISSUER_URL"
"""Set by `hopsplane serve --workers N` for its processes: the URL of the one development
issuer it runs for all of them (not a setting of its own)."""


def app_from_environment() -> FastAPI:
    """The app of one process of `hopsplane serve --workers N` (uvicorn's factory)."""
    settings = Settings()
    configure_logging(settings.log_level, settings.effective_log_format)
    return create_app(settings, dev_issuer_url=os.environ.get(DEV_ISSUER_URL_ENV))


def create_app(
    settings: Settings | None = None,
    database: Database | None = None,
    *,
    dev_issuer_url: str | None = None,
) -> FastAPI:
    """Build the app. ``database`` defaults to one built from ``settings`` (the embedded
    server when HOPSPLANE_DATABASE_URL is unset); the caller owns a database it passes in.
    ``dev_issuer_url``: with HOPSPLANE_AUTH_DEV_ISSUER, trust the development issuer
    running there instead of starting one in this process."""
    settings = settings or Settings()
    owns_database = database is None

    admission = Admission(settings.max_inflight)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Every admitted request finds a worker thread at once (it holds at most one at a
        # time): a request that holds a connection never waits behind new ones for a
        # thread. See docs/scaling.md, "The wedge".
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = max(limiter.total_tokens, admission.limit + 8)
        if owns_database:
            app.state.database = Database.from_settings(settings)
        yield
        if owns_database:
            await app.state.database.adispose()
        if app.state.identity is not None:
            app.state.identity.close()

    app = FastAPI(
        title="hopsplane",
        version=__version__,
        description="Control plane of the managed Hopsworks service.",
        lifespan=lifespan,
        docs_url=None,  # served from the package by install_docs, never from a CDN
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.admission = admission
    app.state.account_hooks = build_account_hooks(settings)
    app.state.stripe = build_stripe(settings)  # None when Stripe is not configured
    if database is not None:
        app.state.database = database
    # Group commit of usage batches; it finds the database when the first batch comes.
    app.state.usage_combiner = BatchCombiner(lambda: app.state.database)

    # Identity and mail. Tests replace app.state.account_hooks (cluster placement and
    # Hopsworks provisioning) with recording hooks after create_app().
    app.state.mailer = build_mailer(settings)
    app.state.identity = build_identity(settings, dev_issuer_url=dev_issuer_url)
    if app.state.identity is not None:
        app.state.authenticator = TokenAuthenticator(
            app.state.identity, session_signer(settings)
        )

    app.openapi = lambda: _openapi_with_security(app)  # type: ignore[method-assign]
    install_error_handlers(app)
    app.router.dependencies.append(Depends(single_query_values))  # before the routers
    app.add_middleware(
        ServingMiddleware,
        admission=admission,
        metrics=app.state.metrics,
        html_errors=lambda request, exc: app.state.html_errors(request, exc),
        body_timeout=settings.web_body_timeout_seconds,
        max_body_bytes=settings.web_max_body_bytes,
    )
    app.include_router(health.router)
    app.include_router(clusters.router)
    app.include_router(account.router)
    app.include_router(admin_credits.router)
    app.include_router(payments.router)
    app.include_router(auto_topup.router)
    app.include_router(auth.router)
    app.include_router(me.router)
    app.include_router(team.router)
    app.include_router(budgets.router)
    app.include_router(admin_users.router)
    app.include_router(usage.router)
    app.include_router(organizations.router)
    app.include_router(api_keys.router)
    app.include_router(audit.router)
    app.include_router(webhooks.router)
    for console_router in CONSOLE_ROUTERS:
        app.include_router(console_router)
    install_docs(app)
    install_security_headers(app)
    app.state.html_errors = rendering.render_error
    return app


def _openapi_with_security(app: FastAPI) -> dict[str, Any]:
    """The generated spec, plus how to authenticate: a Bearer access token (Auth0) or the
    console's session cookie, on every operation that can answer 401 (except sign-in and
    webhooks, which carry their own proof)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    spec = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    spec.setdefault("components", {})["securitySchemes"] = {
        "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
        "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "hopsplane_session"},
        "apiKey": {"type": "http", "scheme": "bearer", "bearerFormat": "hpk_live_…",
                   "description": "A customer's API key (`POST /v1/account/api-keys`); it "
                                  "opens only the operations whose `x-api-key-scope` it "
                                  "holds, and is refused (403) everywhere else."},
    }
    _money_bounds(spec, app.state.settings)
    _integer_bounds(spec)
    for path, path_item in spec.get("paths", {}).items():
        for method, operation in path_item.items():
            if isinstance(operation, dict) and path not in OPERATIONS_PATHS:
                _serving_responses(operation, with_body=method in ("post", "put", "patch"))
            guarded = isinstance(operation, dict) and "401" in operation.get("responses", {})
            anonymous = {"sign-in", "webhooks"} & set(operation.get("tags", []))
            if guarded and not anonymous:
                operation["security"] = [{"bearerAuth": []}, {"sessionCookie": []}]
                _key_scope(operation)
    app.openapi_schema = spec
    return spec


def _key_scope(operation: dict[str, Any]) -> None:
    """Every authenticated operation states whether an API key may call it, and with which
    scope (`x-api-key-scope`, null: keys refused with 403); one a key may call lists the
    `apiKey` scheme with that scope."""
    scope = operation.setdefault(API_KEY_SCOPE, None)
    if scope is not None:
        operation["security"].append({"apiKey": [scope]})
    operation.setdefault("responses", {}).setdefault("403", {
        "description": "Forbidden; `code` is one of: `forbidden`. Among others: an API key "
                       "on an operation it has no scope for.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    })


def _integer_bounds(node: object) -> None:
    """FastAPI writes every minimum and maximum as a float ("maximum": 100.0); on an
    integer schema that tells generated clients a float is fine. Write them as integers."""
    if isinstance(node, dict):
        if node.get("type") == "integer":
            for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
                if isinstance(node.get(key), float) and node[key].is_integer():
                    node[key] = int(node[key])
        for value in node.values():
            _integer_bounds(value)
    elif isinstance(node, list):
        for value in node:
            _integer_bounds(value)


def _money_bounds(spec: dict[str, Any], settings: Settings) -> None:
    """Top-up amounts are bounded by settings (HOPSPLANE_STRIPE_MIN_TOPUP and _MAX_TOPUP),
    so their schemas only know the shape of an amount: state the bounds of this server."""
    lo, hi = settings.stripe_min_topup, settings.stripe_max_topup
    bounded = {
        ("TopupIn", "amount"): (lo, hi),
        ("AutoTopupIn", "amount"): (lo, hi),
        ("AutoTopupIn", "threshold"): (Decimal("0.00"), hi),
    }
    schemas = spec.get("components", {}).get("schemas", {})
    for (name, field), (minimum, maximum) in bounded.items():
        prop = schemas.get(name, {}).get("properties", {}).get(field)
        if prop is None:
            continue
        whole_min = int(minimum) if minimum == int(minimum) else int(minimum) + 1
        prop["anyOf"] = [
            {"type": "string", "pattern": amount_pattern(minimum, maximum)},
            {"type": "integer", "minimum": whole_min, "maximum": int(maximum)},
        ]
        prop["description"] = (prop.get("description", "") + f" From {minimum} to {maximum}.")


_SERVING_RESPONSES = {
    "503": "Unavailable; `code` is one of: `unavailable`. This server is at its in-flight "
           "limit, or the database cannot serve; `Retry-After` says when to retry.",
    "408": "RequestTimeout; `code` is one of: `request_timeout`. The body did not arrive "
           "within HOPSPLANE_WEB_BODY_TIMEOUT_SECONDS (the connection is closed).",
    "413": "PayloadTooLarge; `code` is one of: `payload_too_large`. The body is larger than "
           "HOPSPLANE_WEB_MAX_BODY_BYTES, or than this operation accepts.",
}


def _serving_responses(operation: dict[str, Any], *, with_body: bool) -> None:
    """What the serving middleware may answer before (or instead of) the route: a shed
    request or an unavailable database (503) anywhere, a slow or oversize body (408, 413)
    where there is a body."""
    responses = operation.setdefault("responses", {})
    wanted = ["503"] + (["408", "413"] if with_body else [])
    for status in wanted:
        responses.setdefault(status, {
            "description": _SERVING_RESPONSES[status],
            "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        })
