"""SQL of the rate-limit counters (``hopsplane.rate_limits``)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

_HIT = text(
    """
    INSERT INTO hopsplane.rate_limits AS r (bucket, window_start, hits)
    VALUES (:bucket, to_timestamp(floor(extract(epoch FROM now()) / :window) * :window), 1)
    ON CONFLICT (bucket, window_start) DO UPDATE SET hits = r.hits + 1
    RETURNING r.hits,
              extract(epoch FROM r.window_start + make_interval(secs => :window) - now())
    """
)

_PURGE = text("DELETE FROM hopsplane.rate_limits WHERE window_start < now() - interval '1 day'")


def hit(session: Session, bucket: str, window_seconds: int) -> tuple[int, float]:
    """Count one hit in the bucket's current window; (hits so far, seconds left)."""
    row = session.execute(_HIT, {"bucket": bucket, "window": window_seconds}).one()
    return int(row[0]), float(row[1])


def purge_old(session: Session) -> int:
    return session.execute(_PURGE).rowcount  # type: ignore[attr-defined, no-any-return]
