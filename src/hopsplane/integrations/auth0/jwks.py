"""The tenant's signing keys (JWKS), fetched over HTTP(S), cached, refreshed on an unknown
key id but never more often than ``min_refresh_seconds``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import structlog

from hopsplane.errors import Unauthorized, Unavailable

log = structlog.get_logger(__name__)


class JwksCache:
    def __init__(
        self,
        url: str,
        *,
        min_refresh_seconds: float = 60,
        max_age_seconds: float = 3600,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.min_refresh_seconds = min_refresh_seconds
        self.max_age_seconds = max_age_seconds
        self.timeout = timeout
        self._clock = clock
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()
        self.fetches = 0

    def key(self, kid: str) -> Any:
        """The public key with this id, refetching the set when it is stale or when the id
        is unknown (at most once per ``min_refresh_seconds``)."""
        with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at >= self.max_age_seconds
            if stale:
                self._refresh(keep_on_failure=bool(self._keys))
            if kid not in self._keys and self._may_refresh(now) and not stale:
                self._refresh(keep_on_failure=True)
            found = self._keys.get(kid)
        if found is None:
            raise Unauthorized("the token is signed by a key this server does not know")
        return found

    def _may_refresh(self, now: float) -> bool:
        return self._fetched_at is None or now - self._fetched_at >= self.min_refresh_seconds

    def _refresh(self, *, keep_on_failure: bool) -> None:
        self._fetched_at = self._clock()  # also on failure: no hammering a broken endpoint
        self.fetches += 1
        try:
            response = httpx.get(self.url, timeout=self.timeout, follow_redirects=False)
            response.raise_for_status()
            keys = _parse(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
            log.warning("jwks fetch failed", url=self.url, error=str(exc))
            if keep_on_failure:
                return
            raise Unavailable(f"cannot fetch the signing keys from {self.url}") from exc
        self._keys = keys


def _parse(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("a JWKS document is an object with a `keys` list")
    keys: dict[str, Any] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or jwk.get("kty") != "RSA":
            continue
        if jwk.get("use", "sig") != "sig" or jwk.get("alg", "RS256") != "RS256":
            continue
        kid = jwk.get("kid")
        if isinstance(kid, str) and kid:
            keys[kid] = jwt.PyJWK(jwk, algorithm="RS256").key
    return keys
