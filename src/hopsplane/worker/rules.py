"""Pure rules of the job queue: retry backoff and periodic slots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

BACKOFF_BASE = timedelta(seconds=5)
BACKOFF_CAP = timedelta(hours=1)


def backoff(
    attempt: int, base: timedelta = BACKOFF_BASE, cap: timedelta = BACKOFF_CAP
) -> timedelta:
    """Wait before retry number ``attempt`` (1-based): base, 2*base, 4*base, ... up to cap.

    With the defaults and 20 attempts a job keeps trying for about 11 hours, and the
    periodic `clusters.reconcile` re-enqueues provisioning after that, so a Hopsworks
    outage delays provisioning and loses nothing."""
    if attempt < 1:
        return timedelta(0)
    exponent = min(attempt - 1, 30)
    wait: timedelta = base * (2**exponent)
    return min(wait, cap)


def slot_start(now: datetime, every: timedelta) -> datetime:
    """Start of the ``every``-long slot (aligned to the Unix epoch, UTC) holding ``now``."""
    if every <= timedelta(0):
        raise ValueError("a periodic task needs a positive interval")
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    slots = (now.astimezone(UTC) - epoch) // every
    return epoch + slots * every


def periodic_key(name: str, now: datetime, every: timedelta) -> str:
    return f"periodic:{name}:{slot_start(now, every).isoformat()}"


def describe_error(exc: BaseException, limit: int = 2000) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[: limit - 1] + "…"
