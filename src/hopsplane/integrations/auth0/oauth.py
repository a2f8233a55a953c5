"""Server side of browser sign-in: the authorization code flow with PKCE against Auth0's
``/authorize`` and ``/oauth/token`` endpoints, and its ``/v2/logout``."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from hopsplane.errors import Unauthorized, Unavailable


def new_code_verifier() -> str:
    """RFC 7636 verifier: 64 random bytes, base64url (86 characters, within 43..128)."""
    return secrets.token_urlsafe(64)


def code_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class TokenResponse:
    access_token: str
    expires_in: int
    id_token: str | None = None


class AuthorizationCodeClient:
    """``base_url`` is the issuer (``https://DOMAIN/``)."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str | None,
        audience: str,
        *,
        timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.client_id, self.client_secret = client_id, client_secret
        self.audience, self.timeout = audience, timeout

    def authorize_url(self, *, redirect_uri: str, state: str, verifier: str) -> str:
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "scope": "openid profile email",
            "audience": self.audience,
            "state": state,
            "code_challenge": code_challenge(verifier),
            "code_challenge_method": "S256",
        }
        return f"{self.base_url}authorize?{urlencode(query)}"

    def logout_url(self, *, return_to: str) -> str:
        query = {"client_id": self.client_id, "returnTo": return_to}
        return f"{self.base_url}v2/logout?{urlencode(query)}"

    def exchange_code(self, *, code: str, verifier: str, redirect_uri: str) -> TokenResponse:
        form = {
            "grant_type": "authorization_code",
            "client_id": self.client_id,
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": redirect_uri,
        }
        if self.client_secret:
            form["client_secret"] = self.client_secret
        try:
            response = httpx.post(f"{self.base_url}oauth/token", data=form, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise Unavailable(f"the identity provider cannot be reached: {exc}") from exc
        body = _json(response)
        if response.status_code >= 500:
            raise Unavailable(f"the identity provider failed ({response.status_code})")
        if response.status_code != 200:
            reason = body.get("error_description") or body.get("error") or response.status_code
            raise Unauthorized(f"sign-in failed: {reason}")
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise Unauthorized("sign-in failed: the identity provider returned no access token")
        expires = body.get("expires_in")
        id_token = body.get("id_token")
        return TokenResponse(
            access_token=token,
            expires_in=expires if isinstance(expires, int) and expires > 0 else 3600,
            id_token=id_token if isinstance(id_token, str) else None,
        )


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
