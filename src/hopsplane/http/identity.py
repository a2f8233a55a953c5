"""The authenticator of the app (``app.state.authenticator``) when identity is configured:
a Bearer access token (verified against the JWKS) or the browser's signed session cookie
(whose server-side session must still be live) names the caller; the accounts service
turns that into a user (creating an owner on the first request of a new subject)."""

from __future__ import annotations

import base64
import json
import time

from fastapi import Request
from sqlalchemy.orm import Session

from hopsplane.accounts import service as accounts
from hopsplane.accounts.schemas import SignIn
from hopsplane.errors import Unauthorized
from hopsplane.hooks import AccountHooks
from hopsplane.http.deps import Principal
from hopsplane.http.session_cookie import SESSION_COOKIE, CookieSigner, session_token
from hopsplane.integrations.auth0 import Identity, IdentityProvider
from hopsplane.sessions import service as web_sessions


class VerifiedTokens:
    """Access tokens this process has verified, kept until they expire: a client sends the
    same token with every request, and checking its RSA signature again each time was
    the largest single cost of an authenticated read (docs/scaling.md). Bounded: when
    full, it starts over."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._known: dict[str, tuple[Identity, float]] = {}

    def get(self, token: str) -> Identity | None:
        found = self._known.get(token)
        if found is None:
            return None
        identity, expires = found
        if time.time() >= expires:
            self._known.pop(token, None)
            return None
        return identity

    def put(self, token: str, identity: Identity) -> None:
        expires = _expiry(token)
        if expires is None:
            return
        if len(self._known) >= self._size:
            self._known.clear()
        self._known[token] = (identity, expires)


def _expiry(token: str) -> float | None:
    """``exp`` of a token whose signature was just verified (read from its payload)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = claims.get("exp")
    except (IndexError, ValueError, AttributeError):
        return None
    return float(exp) if isinstance(exp, int | float) else None


class TokenAuthenticator:
    """The principal's email is the one stored for the user; the token's claim only says
    whether that address is verified, and only when the claim names that same address (a
    token whose email claim differs vouches for nothing here)."""

    def __init__(self, provider: IdentityProvider, sessions: CookieSigner) -> None:
        self.provider = provider
        self.sessions = sessions
        self.verified = VerifiedTokens()

    def identify(self, request: Request, session: Session) -> Identity:
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("send the access token as `Authorization: Bearer <token>`")
            token = token.strip()
            known = self.verified.get(token)
            if known is not None:
                return known
            identity = self.provider.verifier.verify(token)
            self.verified.put(token, identity)
            return identity
        cookie_token = session_token(self.sessions, request.cookies.get(SESSION_COOKIE))
        live = web_sessions.identify(session, cookie_token) if cookie_token else None
        if live is not None:  # a signed cookie whose session was not revoked nor expired
            return Identity(
                sub=live.sub, email=live.email, email_verified=live.email_verified,
                name=live.name,
            )
        raise Unauthorized(
            "sign in first: send `Authorization: Bearer <access token>` or sign in at /auth/login"
        )

    def __call__(self, request: Request, session: Session) -> Principal:
        identity = self.identify(request, session)
        hooks: AccountHooks = request.app.state.account_hooks
        account = accounts.sign_in(
            session, hooks,
            SignIn(identity.sub, identity.email, identity.email_verified, identity.name),
        )
        return Principal(
            user_id=account.user_id,
            email=account.email,
            account_owner_id=account.account_owner_id,
            is_platform_admin=account.is_platform_admin,
            email_verified=identity.email_verified
            and accounts.is_address_of(account, identity.email),
        )
