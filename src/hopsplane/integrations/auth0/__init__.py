"""Auth0: access-token verification (JWKS), browser sign-in (code flow + PKCE), and a local
development issuer that speaks the same protocol.

:func:`build_identity` makes the pieces from Settings at start-up: Auth0 when
``HOPSPLANE_AUTH0_DOMAIN``/``AUDIENCE`` are set, the local issuer when
``HOPSPLANE_AUTH_DEV_ISSUER`` is, nothing otherwise (every authenticated route then says 401).
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from hopsplane.config import Settings
from hopsplane.integrations.auth0.dev_issuer import DEV_AUDIENCE, DEV_CLIENT_ID, LocalIssuer
from hopsplane.integrations.auth0.jwks import JwksCache
from hopsplane.integrations.auth0.oauth import AuthorizationCodeClient
from hopsplane.integrations.auth0.verifier import Identity, TokenVerifier

log = structlog.get_logger(__name__)

__all__ = [
    "AuthorizationCodeClient",
    "Identity",
    "IdentityProvider",
    "JwksCache",
    "LocalIssuer",
    "TokenVerifier",
    "build_identity",
]


@dataclass
class IdentityProvider:
    verifier: TokenVerifier
    web: AuthorizationCodeClient | None  # None: browser sign-in not configured
    dev_issuer: LocalIssuer | None = None

    def close(self) -> None:
        if self.dev_issuer is not None:
            self.dev_issuer.stop()


def provider_for(
    settings: Settings, issuer: str, audience: str, *, client_id: str | None,
    client_secret: str | None, dev_issuer: LocalIssuer | None = None,
) -> IdentityProvider:
    jwks = JwksCache(
        issuer + ".well-known/jwks.json",
        min_refresh_seconds=settings.auth0_jwks_min_refresh_seconds,
        max_age_seconds=settings.auth0_jwks_cache_seconds,
    )
    verifier = TokenVerifier(
        issuer, audience, jwks,
        claims_namespace=settings.auth0_claims_namespace,
        leeway_seconds=settings.auth0_leeway_seconds,
    )
    web = (
        AuthorizationCodeClient(issuer, client_id, client_secret, audience)
        if client_id else None
    )
    return IdentityProvider(verifier, web, dev_issuer)


def build_identity(
    settings: Settings, *, dev_issuer_url: str | None = None
) -> IdentityProvider | None:
    """``dev_issuer_url``: a development issuer already running (started by `hopsplane
    serve` for all its processes), trusted instead of starting one here."""
    if settings.auth0_domain and settings.auth0_audience:
        secret = settings.auth0_client_secret
        return provider_for(
            settings, f"https://{settings.auth0_domain}/", settings.auth0_audience,
            client_id=settings.auth0_client_id,
            client_secret=secret.get_secret_value() if secret else None,
        )
    if settings.auth_dev_issuer and dev_issuer_url:
        return provider_for(
            settings, dev_issuer_url, DEV_AUDIENCE, client_id=DEV_CLIENT_ID, client_secret=None
        )
    if settings.auth_dev_issuer:
        issuer = LocalIssuer(claims_namespace=settings.auth0_claims_namespace)
        log.warning(
            "development sign-in enabled: anyone can sign in with any email",
            issuer=issuer.issuer,
            api_access=f"curl -d email=you@example.com {issuer.issuer}dev/token",
        )
        return provider_for(
            settings, issuer.issuer, issuer.audience, client_id=DEV_CLIENT_ID,
            client_secret=None, dev_issuer=issuer,
        )
    return None
