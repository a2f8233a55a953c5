"""The serving middleware: what every request goes through before the routers.

- **Request id, access log, metrics** (as before, without Starlette's BaseHTTPMiddleware,
  which costs a task group and a memory stream per request).
- **Bodies first.** A request's whole body is read (at most ``max_body_bytes``, within
  ``body_timeout`` seconds of its header: 413 / 408 otherwise) *before* it is admitted, so
  a client that sends its body slowly, or never, holds a socket and a few bytes of memory,
  never a place among the requests in flight, a thread or a database connection.
- **Admission.** A process works on at most ``max_inflight`` requests at once (by default
  the size of its connection pool). One more is answered at once with 503 and
  ``Retry-After``, in the error shape; nothing queues behind the pool. Operations paths
  (``/healthz``, ``/readyz``, ``/metrics``) are never refused and touch no pool. Why this
  bound is what keeps the process from wedging: docs/scaling.md, "The wedge". While the
  answer waits on the client to read it (a slow reader), the request does not count either:
  what is being sent holds no connection (exports are materialised first, see
  hopsplane.http.exports).
- **Clients that go away** (before their body arrived, or while the app worked) are one
  log line with status 499, never an unhandled error.
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

import anyio
import structlog
from starlette.requests import ClientDisconnect, Request
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
CLIENT_CLOSED = 499
"""Logged (never sent) when the client went away before its answer: nginx's convention."""
DEFAULT_BODY_TIMEOUT = 10.0
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024


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
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.app = app
        self.admission = admission
        self.metrics = metrics
        self.html_errors = html_errors
        self.body_timeout = body_timeout
        self.max_body_bytes = max_body_bytes

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
            await self._serve(scope, receive, send, request_id, outcome)
        except ClientDisconnect:
            outcome.status = CLIENT_CLOSED  # nobody is left to answer
        finally:
            elapsed = time.perf_counter() - started
            route = outcome.route or _route_template(outcome.scope or scope)
            method = scope["method"]
            self.metrics.requests.labels(route, method, str(outcome.status)).inc()
            self.metrics.latency.labels(route, method).observe(elapsed)
            if outcome.status == CLIENT_CLOSED:
                log.info("request", method=method, route=route, status=CLIENT_CLOSED,
                         duration_ms=round(elapsed * 1000, 2), client_closed=True)
            else:
                log.info("request", method=method, route=route, status=outcome.status,
                         duration_ms=round(elapsed * 1000, 2))
            structlog.contextvars.unbind_contextvars("request_id")

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, request_id: str, outcome: _Outcome
    ) -> None:
        if scope["path"] in OPERATIONS_PATHS:
            await self.app(scope, receive, _sender(send, request_id, outcome))
            return
        body = await self._read_body(scope, receive, send, request_id, outcome)
        if body is None:
            return  # answered (408, 413) or the client is gone
        if self.admission.inflight >= self.admission.limit:
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
            slot = _Slot(self.admission, self.metrics)
            slot.take()
            try:
                await self._admitted(
                    scope, _ReplayableReceive(receive, body), slot.sending(send),
                    request_id, outcome,
                )
            finally:
                slot.give_back()

    async def _read_body(
        self, scope: Scope, receive: Receive, send: Send, request_id: str, outcome: _Outcome
    ) -> list[Message] | None:
        """The request's body messages, read whole before admission; ``None`` when the
        request has been answered (too slow: 408, too large: 413) or its client left."""
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._refuse_body(scope, send, request_id, outcome, 413)
            return None
        messages: list[Message] = []
        size = 0
        with anyio.move_on_after(self.body_timeout) as deadline:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    outcome.status = CLIENT_CLOSED
                    outcome.route = outcome.route or _route_template(scope)
                    return None
                if message["type"] != "http.request":
                    continue
                size += len(message.get("body", b""))
                if size > self.max_body_bytes:
                    await self._refuse_body(scope, send, request_id, outcome, 413)
                    return None
                messages.append(message)
                if not message.get("more_body", False):
                    return messages
        if deadline.cancelled_caught:
            await self._refuse_body(scope, send, request_id, outcome, 408)
        return None

    async def _refuse_body(
        self, scope: Scope, send: Send, request_id: str, outcome: _Outcome, status: int
    ) -> None:
        if status == 408:
            error = AppError(
                f"the request body did not arrive within {self.body_timeout:g} seconds",
                status=408,
            )
            name = "RequestTimeout"
        else:
            error = AppError(f"a request body is at most {self.max_body_bytes} bytes",
                             status=413)
            name = "PayloadTooLarge"
        # The rest of the body is never read: the connection cannot carry another request.
        await self._error(scope, send, request_id, outcome, error, name=name,
                          close=True, html=False)

    async def _admitted(
        self, scope: Scope, replay: _ReplayableReceive, send: Send, request_id: str,
        outcome: _Outcome,
    ) -> None:
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
                if isinstance(exc, ClientDisconnect):
                    outcome.status = CLIENT_CLOSED  # nobody is left to answer
                    return
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
        name: str | None = None, *, close: bool = False, html: bool = True,
    ) -> None:
        if html and self.html_errors is not None:
            page = self.html_errors(Request(scope), exc)
            if page is not None:
                await page(scope, _no_receive, _sender(send, request_id, outcome))
                return
        headers = [(b"content-type", b"application/json")]
        retry = exc.context.get("retry_after")
        if isinstance(retry, int):
            headers.append((b"retry-after", str(retry).encode()))
        if close:
            headers.append((b"connection", b"close"))
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
        try:
            await send(message)
        except RuntimeError as exc:
            # uvicorn on uvloop writes to a transport the client has closed meanwhile
            # (a send that waited on a slow reader): the client is gone, not a bug here.
            if "closed" in str(exc):
                raise ClientDisconnect() from None
            raise

    return wrapped


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


class _Slot:
    """One admitted request's place among those in flight. It is given back while the
    answer waits on the client to take it (any send: uvicorn waits for a full write
    buffer to drain before it writes even a header), and taken again after: a client that
    reads slowly holds a socket, not capacity."""

    def __init__(self, admission: Admission, metrics: Metrics) -> None:
        self._admission = admission
        self._metrics = metrics
        self._held = False

    def take(self) -> None:
        if not self._held:
            self._held = True
            self._admission.inflight += 1
            self._metrics.inflight.inc()

    def give_back(self) -> None:
        if self._held:
            self._held = False
            self._admission.inflight -= 1
            self._metrics.inflight.dec()

    def sending(self, send: Send) -> Send:
        async def wrapped(message: Message) -> None:
            self.give_back()
            try:
                await send(message)
            finally:
                self.take()

        return wrapped


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() and len(text) < 20 else None
    return None


class _ReplayableReceive:
    """Serves the request's body (read before admission) to the app, and again to a
    second attempt; after the body, the client's own messages (a disconnect)."""

    def __init__(self, receive: Receive, body: list[Message]) -> None:
        self._receive = receive
        self._seen: list[Message] = list(body)
        self._position: int | None = 0  # replaying: index into _seen

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
