"""Pure rules of usage metering (no I/O): units, event ids, namespaces, validation."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from hopsplane.errors import Invalid

UNITS_PER_CPU_HOUR = Decimal(10_000)
"""The plan: 1 CPU-hour = 10,000 compute units."""
SECONDS_PER_HOUR = Decimal(3600)
UNIT_QUANTUM = Decimal("0.0001")  # usage_tracking.compute_units is NUMERIC(18,4)
MAX_DAY_UNITS = Decimal("99999999999999.9999")
"""What one (account, day) of usage_tracking holds: compute_units is NUMERIC(18,4)."""
EVENTS_PER_DAY = 1_000_000
"""Events of the largest size that one account-day is guaranteed to hold (one every 86 ms)."""
MAX_EVENT_UNITS = Decimal(100_000_000)
"""The most one event may carry: MAX_DAY_UNITS / EVENTS_PER_DAY, rounded down to a whole
number (10,000 CPU-hours). So no run of valid events can fill a day before 999,999 of the
largest have arrived; an event that would take a day past MAX_DAY_UNITS is refused (422)."""
MAX_EVENT_CPU_SECONDS = MAX_EVENT_UNITS * SECONDS_PER_HOUR / UNITS_PER_CPU_HOUR
"""36,000,000 CPU core-seconds: the seconds that make MAX_EVENT_UNITS."""
MAX_BATCH = 5000
MAX_ID_LENGTH = 255

SOURCE_API = "api"
RESERVED_ID_PREFIX = "prom:"
"""Ids of collected events; nobody else may use them."""

SYSTEM_NAMESPACES = frozenset({
    "kube-system", "kube-public", "kube-node-lease", "default", "monitoring",
    "ingress-nginx", "cert-manager", "hopsworks",
})
"""Namespaces that are never a Hopsworks project: their CPU is not billed to anyone. A
cluster's metadata ``usage_ignored_namespaces`` (a list) replaces this set."""


def agent_source(cluster_id: uuid.UUID) -> str:
    return f"agent:{cluster_id}"


def prometheus_source(cluster_id: uuid.UUID) -> str:
    return f"prometheus:{cluster_id}"


def units_from_cpu_seconds(cpu_seconds: Decimal) -> Decimal:
    """CPU core-seconds to compute units, rounded once, half-up, to 0.0001 unit."""
    return (cpu_seconds * UNITS_PER_CPU_HOUR / SECONDS_PER_HOUR).quantize(
        UNIT_QUANTUM, rounding=ROUND_HALF_UP
    )


def parse_quantity(value: object, field: str, *, exact_units: bool) -> Decimal:
    """A non-negative decimal given as a string or an integer (a JSON float is refused:
    it cannot say 0.1 exactly). Compute units may have at most 4 decimals."""
    if isinstance(value, float | bool) or not isinstance(value, str | int | Decimal):
        raise Invalid(f"{field} must be a decimal string (\"12.5\") or an integer")
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise Invalid(f"{field} must be a number, got {value!r}") from exc
    if not number.is_finite() or number < 0:
        raise Invalid(f"{field} must be a finite number >= 0, got {value!r}")
    limit = MAX_EVENT_UNITS if exact_units else MAX_EVENT_CPU_SECONDS
    if number > limit:  # before quantize, which cannot hold huge numbers
        raise Invalid(f"{field} is out of range (at most {limit:,f} per event): {value!r}")
    if exact_units and number != number.quantize(UNIT_QUANTUM, rounding=ROUND_HALF_UP):
        raise Invalid(f"{field} has more than 4 decimals: {value!r}")
    return number


def event_units(compute_units: object, cpu_seconds: object) -> tuple[Decimal, Decimal | None]:
    """(compute units, cpu seconds or None) of an event that gives exactly one of them."""
    if (compute_units is None) == (cpu_seconds is None):
        raise Invalid("give exactly one of compute_units and cpu_seconds")
    if compute_units is not None:
        return parse_quantity(compute_units, "compute_units", exact_units=True), None
    seconds = parse_quantity(cpu_seconds, "cpu_seconds", exact_units=False)
    return units_from_cpu_seconds(seconds), seconds


def check_event_id(event_id: str, *, collected: bool = False) -> str:
    if not event_id or len(event_id) > MAX_ID_LENGTH or event_id.strip() != event_id:
        raise Invalid(
            f"event id must be 1 to {MAX_ID_LENGTH} characters without surrounding spaces"
        )
    if not collected and event_id.startswith(RESERVED_ID_PREFIX):
        raise Invalid(f"event ids starting with {RESERVED_ID_PREFIX!r} are reserved: {event_id!r}")
    return event_id


def unmatched_cursor(source: str, event_id: str) -> str:
    """A page position in the unmatched events: an id is unique within its source only.
    Sources (``api``, ``agent:<cluster>``, ``prometheus:<cluster>``) hold no space."""
    return f"{source} {event_id}"


def parse_unmatched_cursor(cursor: str) -> tuple[str, str]:
    source, sep, event_id = cursor.partition(" ")
    if not sep or not source or not event_id or "\x00" in cursor:
        raise Invalid("cursor must be a `next_cursor` returned by a previous page")
    return source, event_id


DEFAULT_MAX_AGE_DAYS = 400
"""Usage older than this (days before today, UTC) is refused: ``HOPSPLANE_USAGE_MAX_AGE_DAYS``."""


def utc_timestamp(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise Invalid(f"timestamp {value.isoformat()} has no time zone (use ...Z)")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-01:00 is after the last datetime in UTC
        raise Invalid(f"timestamp {value.isoformat()} is outside the calendar in UTC") from None


def check_usage_day(day: date, today: date, max_age_days: int) -> date:
    """Refuse usage of a day more than ``max_age_days`` before ``today``: an agent's
    mistake (year 0001) would otherwise put a backlog of thousands of days before every
    billing run, and no invoice or dispute reaches that far back."""
    oldest = today - timedelta(days=max_age_days)
    if day < oldest:
        raise Invalid(
            f"usage of {day.isoformat()} is older than {max_age_days} days "
            f"(the oldest day accepted today is {oldest.isoformat()})"
        )
    return day


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def day_end(day: date) -> datetime:
    """Where a day's 1d increase is evaluated: 00:00 UTC of the next day."""
    return day_start(day + timedelta(days=1))


def collection_window(day: date, now: datetime) -> tuple[datetime, int]:
    """Where to evaluate a collection of ``day`` and over how many seconds: a day that has
    ended is collected whole, at its end; today is collected so far, from 00:00 UTC to
    ``now`` (whole seconds). A window of 0 seconds (00:00 exactly) has nothing in it yet;
    a day that has not begun is refused."""
    start, end = day_start(day), day_end(day)
    if now >= end:
        return end, int((end - start).total_seconds())
    if now < start:
        raise Invalid(f"{day.isoformat()} has not begun yet (UTC)")
    seconds = int((now - start).total_seconds())
    return start + timedelta(seconds=seconds), seconds


def collected_event_id(cluster_id: uuid.UUID, namespace: str, day: date) -> str:
    """Deterministic: the same cluster, namespace and day always give the same id."""
    return f"{RESERVED_ID_PREFIX}{cluster_id}:{namespace}:{day.isoformat()}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


TOKEN_PREFIX = "hpu_"  # noqa: S105 - a prefix, not a secret
"""Ingestion tokens look like ``hpu_<43 url-safe characters>``."""


def ignored_namespaces(cluster_metadata: dict[str, object]) -> frozenset[str]:
    configured = cluster_metadata.get("usage_ignored_namespaces")
    if isinstance(configured, list) and all(isinstance(n, str) for n in configured):
        return frozenset(configured)
    return SYSTEM_NAMESPACES
