"""The serving middleware: what every request goes through before the routers.

- **Request id, access log, metrics** (as before, without Starlette's BaseHTTPMiddleware,
  which costs a task group and a memory stream per request).
- **Admission.** A process works on at most ``max_inflight`` requests at once (by default
  the size of its connection pool). One more is answered at once with 503 and
  ``Retry-After``, in the error shape; nothing queues behind the pool. Operations paths
  (``/healthz``, ``/readyz``, ``/metrics``) are never refused and touch no pool. Why this
  bound is what keeps the process from wedging: docs/scaling.md, "The wedge".
- **Database unavailable.** A request that fails because the database cannot serve (a
  connection broken or refused, a terminated backend, no pooled connection in time) is
  answered 503 with ``Retry-After``. When it met a *broken pooled connection* before
  anything could have been written (no statement completed; for GET/HEAD: no COMMIT
  sent), it is run once more first, on a fresh connection (the pool has discarded the
  broken one).
- **Unexpected errors** are answered here (500, the error shape, the request id) and
  logged once, without local variables; the exception does not reach the ASGI server, so
  the client's keep-alive connection stays open.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import structlog
from starlette.requests import Request
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hopsplane.db.engine import UnitOfWork, current_unit, is_database_unavailable
from hopsplane.errors import AppError, Unavailable, code_of
from hopsplane.observability import Metrics

log = structlog.get_logger("hopsplane.http")

OPERATIONS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
"""Answered whatever the load: they never wait for a connection of the pool."""

RETRY_AFTER_SHED = 1
RETRY_AFTER_DATABASE = 2
SATURATION_MEMORY_SECONDS = 1.0
"""/readyz says "not ready" for this long after the process last refused a request."""

_SAFE_METHODS = frozenset({"GET", "HEAD"})


class Admission:
    """The in-flight count of one process (the event loop is its only writer)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the in-flight limit must be at least 1")
        self.limit = limit
        self.inflight = 0
        self.last_shed = 0.0  # time.monotonic() of the last refusal

    @property
    def saturated(self) -> bool:
        recently = time.monotonic() - self.last_shed < SATURATION_MEMORY_SECONDS
        return self.inflight >= self.limit or (self.last_shed > 0 and recently)


def _error_body(error: str, code: str, detail: str) -> bytes:
    return json.dumps({"error": error, "code": code, "detail": detail}).encode()


class ServingMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        admission: Admission,
        metrics: Metrics,
        html_errors: Callable[[Request, AppError], Any] | None = None,
    ) -> None:
        self.app = app
        self.admission = admission
        self.metrics = metrics
        self.html_errors = html_errors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        outcome = _Outcome()
        try:
            if scope["path"] in OPERATIONS_PATHS:
                await self.app(scope, receive, _sender(send, request_id, outcome))
            elif self.admission.inflight >= self.admission.limit:
                # cheap on purpose: a refusal must cost far less than an answer
                self.admission.last_shed = time.monotonic()
                self.metrics.shed.inc()
                outcome.route = "<shed>"
                await self._error(
                    scope, send, request_id, outcome,
                    Unavailable(
                        f"this server is at its limit of {self.admission.limit} requests "
                        "at once; retry shortly", retry_after=RETRY_AFTER_SHED,
                    ),
                )
            else:
                self.admission.inflight += 1
                self.metrics.inflight.inc()
                try:
                    await self._admitted(scope, receive, send, request_id, outcome)
                finally:
                    self.admission.inflight -= 1
                    self.metrics.inflight.dec()
        finally:
            elapsed = time.perf_counter() - started
            route = outcome.route or _route_template(outcome.scope or scope)
            method = scope["method"]
            self.metrics.requests.labels(route, method, str(outcome.status)).inc()
            self.metrics.latency.labels(route, method).observe(elapsed)
            log.info("request", method=method, route=route, status=outcome.status,
                     duration_ms=round(elapsed * 1000, 2))
            structlog.contextvars.unbind_contextvars("request_id")

    async def _admitted(
        self, scope: Scope, receive: Receive, send: Send, request_id: str, outcome: _Outcome
    ) -> None:
        replay = _ReplayableReceive(receive)
        for attempt in (1, 2):
            unit = UnitOfWork()
            token = current_unit.set(unit)
            attempt_scope = dict(scope)
            attempt_scope["state"] = dict(scope["state"])
            outcome.scope = attempt_scope
            try:
                await self.app(attempt_scope, replay.receive, _sender(send, request_id, outcome))
                return
            except Exception as exc:
                if outcome.started:
                    raise  # half a response is out: only closing the connection is left
                if is_database_unavailable(exc):
                    if attempt == 1 and _may_run_again(exc, unit, scope["method"]):
                        self.metrics.db_retries.inc()
                        log.warning("broken database connection; running the request again",
                                    path=scope["path"], error=_one_line(exc))
                        replay.rewind()
                        continue
                    self.metrics.db_unavailable.inc()
                    log.warning("database unavailable", path=scope["path"],
                                error=_one_line(exc))
                    await self._error(
                        scope, send, request_id, outcome,
                        Unavailable("the database is unavailable; retry shortly",
                                    retry_after=RETRY_AFTER_DATABASE),
                    )
                    return
                log.error("unhandled error", path=scope["path"], exc_info=exc)
                await self._error(
                    scope, send, request_id, outcome,
                    AppError(f"internal error (request id {request_id})", status=500),
                    name="InternalError",
                )
                return
            finally:
                current_unit.reset(token)

    async def _error(
        self, scope: Scope, send: Send, request_id: str, outcome: _Outcome, exc: AppError,
        name: str | None = None,
    ) -> None:
        if self.html_errors is not None:
            page = self.html_errors(Request(scope), exc)
            if page is not None:
                await page(scope, _no_receive, _sender(send, request_id, outcome))
                return
        headers = [(b"content-type", b"application/json")]
        retry = exc.context.get("retry_after")
        if isinstance(retry, int):
            headers.append((b"retry-after", str(retry).encode()))
        body = _error_body(name or exc.name, code_of(name) if name else exc.code, exc.message)
        headers.append((b"content-length", str(len(body)).encode()))
        sender = _sender(send, request_id, outcome)
        await sender({"type": "http.response.start", "status": exc.status, "headers": headers})
        await sender({"type": "http.response.body", "body": body})


class _Outcome:
    __slots__ = ("route", "scope", "started", "status")

    def __init__(self) -> None:
        self.status = 500
        self.started = False
        self.scope: Scope | None = None
        self.route: str | None = None


def _sender(send: Send, request_id: str, outcome: _Outcome) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            outcome.started = True
            outcome.status = message["status"]
            headers = list(message.get("headers", []))
            headers.append((b"x-request-id", request_id.encode()))
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


class _ReplayableReceive:
    """Keeps the request body messages the app read, so that a second attempt reads the
    same body."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._seen: list[Message] = []
        self._position: int | None = None  # replaying: index into _seen

    async def receive(self) -> Message:
        if self._position is not None and self._position < len(self._seen):
            message = self._seen[self._position]
            self._position += 1
            return message
        message = await self._receive()
        if message["type"] == "http.request":
            self._seen.append(message)
            if self._position is not None:
                self._position += 1
        return message

    def rewind(self) -> None:
        self._position = 0


def _may_run_again(exc: BaseException, unit: UnitOfWork, method: str) -> bool:
    """Only a broken *pooled* connection (not a refused one, not a pool timeout), and only
    when nothing can have been written: no statement completed, or for a safe method no
    COMMIT was sent (an uncommitted transaction dies with its backend)."""
    broken = bool(getattr(exc, "connection_invalidated", False))
    if not broken:
        return False
    if unit.statements == 0:
        return True
    return method in _SAFE_METHODS and unit.commits == 0


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".splitlines()
    return text[0][:300] if text else type(exc).__name__


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            incoming: str = value.decode("latin-1")
            if 0 < len(incoming) <= 128 and incoming.isprintable():
                return incoming
            break
    return uuid.uuid4().hex


def _route_template(scope: Scope) -> str:
    # The matched route (set by the router; FastAPI keeps included routers nested, so a
    # walk of the top-level routes would see only the router and label with raw URLs).
    matched = getattr(scope.get("route"), "path", None)
    if isinstance(matched, str):
        return matched
    app = scope.get("app")
    for route in getattr(getattr(app, "router", None), "routes", ()):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return str(getattr(route, "path", scope["path"]))
    return "<unmatched>"
