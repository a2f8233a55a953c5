"""Signed browser session cookies: ``base64url(json) . base64url(HMAC-SHA256)``.

The cookie holds who signed in (sub, email, email_verified, name) and when it expires; it
is signed with HOPSPLANE_SECRET_KEY (HMAC-SHA256, domain-separated per purpose), http-only,
SameSite=Lax and Secure when the public URL is https. It holds no Auth0 token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import Any

SESSION_COOKIE = "hopsplane_session"
LOGIN_COOKIE = "hopsplane_login"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CookieSigner:
    def __init__(self, secret: str, purpose: str) -> None:
        self._key = hashlib.sha256(f"hopsplane:{purpose}:{secret}".encode()).digest()

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest())

    def dumps(self, payload: dict[str, Any], max_age_seconds: int) -> str:
        data = {**payload, "exp": int(time.time()) + max_age_seconds}
        body = _b64(json.dumps(data, separators=(",", ":"), sort_keys=True).encode())
        return f"{body}.{self._mac(body)}"

    def loads(self, value: str | None) -> dict[str, Any] | None:
        """The payload, or None when the cookie is absent, forged, malformed or expired."""
        if not value or value.count(".") != 1 or len(value) > 4096:
            return None
        body, mac = value.split(".")
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        try:
            data = json.loads(_unb64(body))
        except (ValueError, binascii.Error):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("exp"), int):
            return None
        if data["exp"] < time.time():
            return None
        return data
