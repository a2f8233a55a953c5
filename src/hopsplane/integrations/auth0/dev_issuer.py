"""A local stand-in for an Auth0 tenant, for development and tests.

It generates an RSA key at start, serves its JWKS at ``/.well-known/jwks.json`` over real
HTTP on 127.0.0.1, and speaks just enough of Auth0's browser protocol (``/authorize`` with
PKCE, ``/oauth/token``, ``/v2/logout``) for the sign-in routes to run unchanged. Sign-in
asks for an email only (no password): it is enabled by ``HOPSPLANE_AUTH_DEV_ISSUER`` alone,
which Settings refuse in production and next to an Auth0 configuration.
"""

from __future__ import annotations

import hashlib
import html
import json
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from email_validator import EmailNotValidError, validate_email
from jwt.algorithms import RSAAlgorithm

from hopsplane.integrations.auth0.oauth import code_challenge

DEV_AUDIENCE = "https://api.hopsplane.dev/"
DEV_CLIENT_ID = "hopsplane-dev-console"


@dataclass
class _Grant:
    sub: str
    email: str
    client_id: str
    redirect_uri: str
    challenge: str
    audience: str
    issued_at: float


SHUTDOWN_POLL_SECONDS = 0.05
"""How often the issuer's HTTP server checks whether it was asked to stop."""


class LocalIssuer:
    def __init__(
        self,
        *,
        audience: str = DEV_AUDIENCE,
        claims_namespace: str = "https://hopsplane.io/",
        client_id: str = DEV_CLIENT_ID,
        client_secret: str | None = None,
    ) -> None:
        self.audience, self.ns = audience, claims_namespace
        self.client_id, self.client_secret = client_id, client_secret
        self._keys: dict[str, rsa.RSAPrivateKey] = {}
        self.current_kid = self.rotate_key()
        self._grants: dict[str, _Grant] = {}
        self._lock = threading.Lock()
        self.jwks_requests = 0
        self.token_requests: list[dict[str, str]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        # shutdown() waits for the serving loop to look at its flag, which it does once per
        # poll interval (0.5 s by default): every app that stops would wait that long.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS},
            name="hopsplane-dev-issuer", daemon=True,
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def jwks_url(self) -> str:
        return self.issuer + ".well-known/jwks.json"

    def rotate_key(self, *, keep_old: bool = True) -> str:
        """A new signing key becomes current (tests: refresh on an unknown kid)."""
        kid = secrets.token_hex(8)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if not keep_old:
            self._keys.clear()
        self._keys[kid] = key
        self.current_kid = kid
        return kid

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in self._keys.items():
            jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys}

    def issue(
        self,
        sub: str,
        *,
        email: str | None = None,
        email_verified: bool = True,
        name: str | None = None,
        audience: str | list[str] | None = None,
        issuer: str | None = None,
        expires_in: int = 3600,
        not_before: float | None = None,
        kid: str | None = None,
        key: rsa.RSAPrivateKey | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """An access token shaped like Auth0's (RS256, kid, namespaced custom claims)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": issuer or self.issuer,
            "sub": sub,
            "aud": audience if audience is not None else [self.audience, self.issuer + "userinfo"],
            "iat": now,
            "exp": now + expires_in,
            "scope": "openid profile email",
        }
        if not_before is not None:
            claims["nbf"] = int(not_before)
        if email is not None:
            claims[self.ns + "email"] = email
            claims[self.ns + "email_verified"] = email_verified
        if name is not None:
            claims[self.ns + "name"] = name
        claims.update(extra or {})
        kid = kid or self.current_kid
        signing_key = key or self._keys.get(kid) or self._keys[self.current_kid]
        return jwt.encode(claims, signing_key, algorithm="RS256", headers={"kid": kid})

    @staticmethod
    def sub_for(email: str) -> str:
        return "dev|" + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:24]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- the browser protocol -------------------------------------------------------

    def _authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        required = ("client_id", "redirect_uri", "state", "code_challenge")
        if any(not query.get(k) for k in required) or query.get("response_type") != "code":
            return 400, {}, b"missing authorize parameters"
        if query.get("code_challenge_method") != "S256" or query["client_id"] != self.client_id:
            return 400, {}, b"unknown client or unsupported PKCE method"
        email = query.get("login_hint", "").strip()
        if not email:
            return 200, {"Content-Type": "text/html; charset=utf-8"}, _login_form(query)
        refused = email_refusal(email)
        if refused is not None:
            return (422, {"Content-Type": "text/html; charset=utf-8"},
                    _login_form(query, refused))
        code = secrets.token_urlsafe(32)
        with self._lock:
            self._grants[code] = _Grant(
                sub=self.sub_for(email), email=email.lower(), client_id=query["client_id"],
                redirect_uri=query["redirect_uri"], challenge=query["code_challenge"],
                audience=query.get("audience") or self.audience, issued_at=time.time(),
            )
        back = query["redirect_uri"] + "?" + urlencode({"code": code, "state": query["state"]})
        return 302, {"Location": back}, b""

    def _token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.token_requests.append({k: v for k, v in form.items() if k != "client_secret"})
        with self._lock:
            grant = self._grants.pop(form.get("code", ""), None)  # a code is used once
        if form.get("grant_type") != "authorization_code" or grant is None:
            return 403, {"error": "invalid_grant", "error_description": "unknown or used code"}
        if self.client_secret is not None and form.get("client_secret") != self.client_secret:
            return 401, {"error": "access_denied", "error_description": "bad client secret"}
        if (
            form.get("client_id") != grant.client_id
            or form.get("redirect_uri") != grant.redirect_uri
            or code_challenge(form.get("code_verifier", "")) != grant.challenge
            or time.time() - grant.issued_at > 600
        ):
            return 403, {"error": "invalid_grant", "error_description": "PKCE or redirect mismatch"}
        token = self.issue(grant.sub, email=grant.email, audience=[grant.audience])
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600}

    def _dev_token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Development convenience: an API access token for an email (curl, scripts)."""
        email = form.get("email", "").strip().lower()
        if not email:
            return 400, _dev_token_usage()
        refused = email_refusal(email)
        if refused is not None:
            return 400, {"error": "invalid_request", "error_description": refused}
        token = self.issue(self.sub_for(email), email=email)
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600}


def email_refusal(email: str) -> str | None:
    """Why the app would refuse to sign ``email`` in, or None. The app keeps only addresses
    that email-validator accepts (accounts.rules.normalise_email; no DNS lookup), and that
    refuses special-use domains (``.test``, ``.invalid``, ``.local``, ``.onion``,
    ``.arpa``; its ``SPECIAL_USE_DOMAIN_NAMES``) and a domain without a dot
    (``localhost``): no mail can ever reach them. The development sign-in refuses them
    too, with this reason on its own page, rather than issuing a token the app then
    answers with a bare 401 (making the app accept them would loosen what production
    keeps). Addresses at example.com, .org and .net work (RFC 6761 reserves them for
    examples, and email-validator accepts them without a DNS lookup)."""
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError as exc:
        return (f"{email} cannot sign in: {exc} Use an address the app can keep, such as "
                "you@example.com.")
    return None


def _dev_token_usage() -> dict[str, Any]:
    return {"error": "invalid_request", "error_description": "POST email=you@example.com"}


def _login_form(query: dict[str, str], refused: str | None = None) -> bytes:
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in query.items() if k != "login_hint"
    )
    typed = html.escape(query.get("login_hint", ""))
    problem = (f'<p id="problem" role="alert" style="color:#b00020">{html.escape(refused)}</p>'
               if refused else "")
    return (
        '<!doctype html><meta charset="utf-8"><title>hopsplane development sign-in</title>'
        "<h1>Development sign-in</h1><p>No password: any address that could receive mail "
        "signs in: you@example.com does; reserved names such as .test, .local, .invalid "
        "or localhost do not.</p>"
        f"{problem}"
        f'<form method="get" action="/authorize">{hidden}'
        f'<input name="login_hint" type="email" required placeholder="you@example.com" '
        f'value="{typed}">'
        "<button>Sign in</button></form>"
    ).encode()


def _handler_for(issuer: LocalIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            self._send(status, {"Content-Type": "application/json"}, json.dumps(payload).encode())

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path == "/.well-known/jwks.json":
                issuer.jwks_requests += 1
                self._json(200, issuer.jwks())
            elif url.path == "/authorize":
                self._send(*issuer._authorize(query))
            elif url.path == "/v2/logout":
                target = query.get("returnTo", "")
                self._send(302, {"Location": target}, b"") if target else self._send(200, {}, b"")
            else:
                self._json(404, {"error": "not_found"})

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            if path not in ("/oauth/token", "/dev/token"):
                self._json(404, {"error": "not_found"})
                return
            length = min(int(self.headers.get("Content-Length") or 0), 65536)
            raw = self.rfile.read(length).decode(errors="replace")
            try:
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    form = {k: str(v) for k, v in json.loads(raw or "{}").items()}
                else:
                    form = {k: v[0] for k, v in parse_qs(raw).items()}
            except (ValueError, AttributeError):
                self._json(400, {"error": "invalid_request"})
                return
            if path == "/dev/token":
                self._json(*issuer._dev_token(form))
            else:
                self._json(*issuer._token(form))

    return Handler
