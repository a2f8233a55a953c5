"""Signed browser cookies, with itsdangerous and a key list.

Two cookies: the session cookie holds a random session token (the session itself, who
signed in and until when, is the row in ``hopsplane.sessions`` that sign-out revokes); the
login cookie holds the state and PKCE verifier of a sign-in in progress. Both are signed
with HOPSPLANE_SECRET_KEY's key list (the first key signs, every key verifies, so a new key
put in front signs nobody out), salted per purpose, timestamped and refused after their
max age. Set with ``HttpOnly``, ``SameSite=Lax`` and ``Secure`` outside development
(:func:`set_cookie`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.responses import Response

from hopsplane.config import Settings

SESSION_COOKIE = "hopsplane_session"
LOGIN_COOKIE = "hopsplane_login"
MAX_COOKIE_BYTES = 4096


class CookieSigner:
    def __init__(self, secrets: Sequence[str], purpose: str, max_age_seconds: int) -> None:
        if not secrets:
            raise ValueError("at least one signing key is needed")
        # itsdangerous signs with the last key of the list and verifies with all of them.
        self._serializer = URLSafeTimedSerializer(
            list(reversed(secrets)), salt=f"hopsplane:{purpose}"
        )
        self.max_age = max_age_seconds

    def dumps(self, payload: dict[str, Any]) -> str:
        value = self._serializer.dumps(payload)
        return value if isinstance(value, str) else value.decode("ascii")

    def loads(self, value: str | None) -> dict[str, Any] | None:
        """The payload, or None when the cookie is absent, forged, malformed or too old."""
        if not value or len(value) > MAX_COOKIE_BYTES:
            return None
        try:
            data = self._serializer.loads(value, max_age=self.max_age)
        except (BadSignature, ValueError, TypeError):  # SignatureExpired is a BadSignature
            return None
        return data if isinstance(data, dict) else None


def session_cookie(signer: CookieSigner, token: str) -> str:
    """The session cookie's value for a session token."""
    return signer.dumps({"session": token})


def session_token(signer: CookieSigner, value: str | None) -> str | None:
    """The session token a session cookie carries (None: absent, forged or too old)."""
    data = signer.loads(value)
    token = data.get("session") if data is not None else None
    return token if isinstance(token, str) else None


def session_signer(settings: Settings) -> CookieSigner:
    return CookieSigner(settings.effective_secret_keys, "session",
                        settings.session_max_age_seconds)


def set_cookie(
    response: Response, settings: Settings, name: str, value: str, max_age: int, path: str
) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path=path, httponly=True, samesite="lax",
        secure=settings.secure_cookies,
    )
