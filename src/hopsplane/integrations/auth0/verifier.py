"""Verification of access tokens: RS256 only, signed by a key of the tenant's JWKS, issued
by ``https://DOMAIN/``, for our API (``aud``), within ``exp``/``nbf`` (small leeway).
Anything else is Unauthorized."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

import jwt

from hopsplane.errors import Unauthorized
from hopsplane.integrations.auth0.jwks import JwksCache


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a verified token (or session cookie) says the caller is."""

    sub: str
    email: str | None
    email_verified: bool
    name: str | None = None


class TokenVerifier:
    def __init__(
        self,
        issuer: str,
        audience: str,
        jwks: JwksCache,
        *,
        claims_namespace: str,
        leeway_seconds: int = 30,
    ) -> None:
        if not issuer.endswith("/"):
            raise ValueError("the issuer is a URL ending in '/' (https://DOMAIN/)")
        self.issuer, self.audience, self.jwks = issuer, audience, jwks
        self.ns = claims_namespace
        self.leeway = leeway_seconds

    def verify(self, token: str) -> Identity:
        header = _header(token)
        if header.get("alg") != "RS256":
            raise Unauthorized("only RS256-signed access tokens are accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("the access token names no signing key (kid)")
        key = self.jwks.key(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("the access token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise Unauthorized("the access token is not valid yet") from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthorized("the access token is not meant for this API (aud)") from exc
        except jwt.InvalidIssuerError as exc:
            raise Unauthorized("the access token comes from another issuer (iss)") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"the access token is invalid: {exc}") from exc
        return self.identity(claims)

    def identity(self, claims: dict[str, Any]) -> Identity:
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub or len(sub) > 255:
            raise Unauthorized("the access token has no usable subject (sub)")
        email = claims.get(self.ns + "email", claims.get("email"))
        name = claims.get(self.ns + "name", claims.get("name"))
        verified = claims.get(self.ns + "email_verified", claims.get("email_verified"))
        return Identity(
            sub=sub,
            email=email if isinstance(email, str) and email else None,
            email_verified=verified is True,
            name=name if isinstance(name, str) and name else None,
        )


def _header(token: str) -> dict[str, Any]:
    """The JOSE header, read to pick the key (``jwt.decode`` checks everything afterwards).
    Reads only the first segment: PyJWT's ``get_unverified_header`` decodes all three, which
    doubled the cost of a verification."""
    segment = token.split(".", 1)[0]
    if token.count(".") != 2 or not segment or len(segment) > 4096:
        raise Unauthorized("the access token is malformed")
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error) as exc:
        raise Unauthorized("the access token is malformed") from exc
    if not isinstance(header, dict):
        raise Unauthorized("the access token is malformed")
    return header
