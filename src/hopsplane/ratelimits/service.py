"""Use cases of the rate limits: count an attempt, refuse past the limit.

A counter must survive the rollback of the request it guards (a failed invite acceptance
is exactly what must count), so the edge records the attempt in a transaction of its own,
commits it, and only then applies :func:`enforce`.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

from sqlalchemy.orm import Session

from hopsplane.errors import TooManyRequests
from hopsplane.ratelimits import repository as repo

_PURGE_ONE_IN = 100  # purge windows older than a day on ~1% of the hits


@dataclass(frozen=True, slots=True)
class Attempt:
    bucket: str
    hits: int  # attempts counted in the current window, this one included
    window_seconds: int
    seconds_left: int


def record(session: Session, bucket: str, *, window_seconds: int = 3600) -> Attempt:
    hits, left = repo.hit(session, bucket, window_seconds)
    if secrets.randbelow(_PURGE_ONE_IN) == 0:
        repo.purge_old(session)
    return Attempt(bucket, hits, window_seconds, max(1, math.ceil(left)))


def enforce(attempt: Attempt, *, limit: int, what: str) -> None:
    """TooManyRequests once the window holds more than ``limit`` attempts."""
    if attempt.hits > limit:
        minutes = attempt.window_seconds // 60
        raise TooManyRequests(
            f"too many {what}: at most {limit} per {minutes} minutes; "
            f"try again in {attempt.seconds_left} seconds",
            retry_after=attempt.seconds_left,
        )
