"""Browser sign-in, server side: /auth/login → the identity provider's /authorize (code flow
with PKCE) → /auth/callback (code exchanged for an access token, verified like any API
token, a server-side session started and its signed token set as the session cookie) and
POST /auth/logout (the session revoked, then the cookie forgotten). Anonymous by design;
the console only renders pages around them."""

from __future__ import annotations

import hmac
import html
import re
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from hopsplane.accounts import service as accounts
from hopsplane.accounts.schemas import SignIn
from hopsplane.api.errors import error_responses
from hopsplane.config import Settings
from hopsplane.db.engine import Database
from hopsplane.errors import Unauthorized, Unavailable
from hopsplane.http.deps import SessionDep
from hopsplane.http.forms import check_csrf, read_form
from hopsplane.http.session_cookie import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    CookieSigner,
    session_cookie,
    session_signer,
    session_token,
    set_cookie,
)
from hopsplane.integrations.auth0 import AuthorizationCodeClient, IdentityProvider
from hopsplane.integrations.auth0.oauth import new_code_verifier
from hopsplane.sessions import service as web_sessions
from hopsplane.sessions.schemas import SessionIdentity
from hopsplane.web.security import CONSOLE_CSS

router = APIRouter(prefix="/auth", tags=["sign-in"])

LOGIN_MAX_AGE = 600
_REDIRECT: dict[int | str, dict[str, Any]] = {
    302: {"description": "Redirect (to the identity provider or back to the console)."}
}


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _web(request: Request) -> AuthorizationCodeClient:
    provider: IdentityProvider | None = getattr(request.app.state, "identity", None)
    if provider is None or provider.web is None:
        raise Unavailable(_not_configured(_settings(request), provider is not None))
    return provider.web


def _not_configured(settings: Settings, tokens_only: bool) -> str:
    """What the operator sets so that people can sign in (names of settings only)."""
    if tokens_only:
        return ("browser sign-in is not configured on this server: API tokens are checked, "
                "but signing in needs the console's Auth0 application: set "
                "`HOPSPLANE_AUTH0_CLIENT_ID` and `HOPSPLANE_AUTH0_CLIENT_SECRET`, then restart it")
    auth0 = ("`HOPSPLANE_AUTH0_DOMAIN`, `HOPSPLANE_AUTH0_AUDIENCE`, `HOPSPLANE_AUTH0_CLIENT_ID` "
             "and `HOPSPLANE_AUTH0_CLIENT_SECRET`")
    if settings.environment == "production":
        return f"sign-in is not configured on this server: set {auth0}, then restart it"
    return ("sign-in is not configured on this server. To try it locally, start the server "
            "with the development sign-in (any email, no password): "
            "`HOPSPLANE_AUTH_DEV_ISSUER=true hopsplane serve`. With Auth0, set "
            f"{auth0}, then restart it")


def _wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept.split(",")[0]


def _not_configured_page(message: str) -> HTMLResponse:
    """A browser following the console's sign-in link reads what to set, as a page."""
    first, _, rest = message.partition(". ")
    paragraphs = [first[:1].upper() + first[1:] + ("." if rest else "")]
    if rest:
        paragraphs.append(rest if rest.endswith(".") else rest + ".")
    body = "".join(
        "<p>" + re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(p, quote=False)) + "</p>"
        for p in paragraphs
    )
    page = (
        '<!doctype html><html lang="en"><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Sign-in is not configured</title>"
        # the console's own stylesheet: the one inline style its security policy allows
        f"<style>{CONSOLE_CSS}</style><main>"
        f"<h1>Sign-in is not configured</h1>{body}"
        '<p><a href="/console">Back to the console</a></p></main></html>'
    )
    return HTMLResponse(page, status_code=503)


def _callback_url(settings: Settings) -> str:
    return settings.public_url.rstrip("/") + "/auth/callback"


def _safe_return(path: str | None) -> str:
    """Only a path on this site: no scheme, no host, no protocol-relative `//evil`."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path if path.isprintable() else "/"


def _login_signer(settings: Settings) -> CookieSigner:
    return CookieSigner(settings.effective_secret_keys, "login", LOGIN_MAX_AGE)


@router.get(
    "/login", status_code=302, response_class=RedirectResponse,
    responses={**_REDIRECT, **error_responses(422, 503)},
)
def login(
    request: Request, return_to: Annotated[str | None, Query(max_length=2048)] = None
) -> Response:
    """Start signing in: redirect to the identity provider. When sign-in is not
    configured: 503, as a page that says what to set for a browser, else the error shape."""
    try:
        web = _web(request)
    except Unavailable as exc:
        if not _wants_html(request):
            raise
        return _not_configured_page(exc.message)
    settings = _settings(request)
    state, verifier = secrets.token_urlsafe(32), new_code_verifier()
    response = RedirectResponse(
        web.authorize_url(redirect_uri=_callback_url(settings), state=state, verifier=verifier),
        status_code=302,
    )
    value = _login_signer(settings).dumps(
        {"state": state, "verifier": verifier, "return_to": _safe_return(return_to)}
    )
    set_cookie(response, settings, LOGIN_COOKIE, value, LOGIN_MAX_AGE, "/auth")
    return response


@router.get(
    "/callback", status_code=302, response_class=RedirectResponse,
    responses={**_REDIRECT, **error_responses(401, 403, 422, 503)},
)
def callback(
    request: Request,
    session: SessionDep,
    code: Annotated[str | None, Query(max_length=2048)] = None,
    state: Annotated[str | None, Query(max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
    error_description: Annotated[str | None, Query(max_length=1024)] = None,
) -> RedirectResponse:
    """Where the identity provider sends the browser back: exchange the code, verify the
    access token, create the user on first sign-in, set the session cookie."""
    web = _web(request)
    settings = _settings(request)
    if error:
        raise Unauthorized(f"sign-in was refused: {error_description or error}")
    pending = _login_signer(settings).loads(request.cookies.get(LOGIN_COOKIE))
    if pending is None:
        raise Unauthorized("the sign-in took too long or started elsewhere: sign in again")
    expected = str(pending.get("state")).encode("utf-8", "surrogatepass")
    given = (state or "").encode("utf-8", "surrogatepass")  # bytes: any character compares
    if not code or not state or not hmac.compare_digest(expected, given):
        raise Unauthorized("the sign-in response does not match the request: sign in again")
    tokens = web.exchange_code(
        code=code, verifier=str(pending["verifier"]), redirect_uri=_callback_url(settings)
    )
    provider: IdentityProvider = request.app.state.identity
    identity = provider.verifier.verify(tokens.access_token)
    account = accounts.sign_in(
        session, request.app.state.account_hooks,
        SignIn(identity.sub, identity.email, identity.email_verified, identity.name),
    )
    max_age = settings.session_max_age_seconds
    token = web_sessions.start(
        session, account.user_id,
        SessionIdentity(identity.sub, identity.email, identity.email_verified, identity.name),
        max_age,
    )
    response = RedirectResponse(_safe_return(str(pending.get("return_to"))), status_code=302)
    set_cookie(response, settings, SESSION_COOKIE,
               session_cookie(session_signer(settings), token), max_age, "/")
    response.delete_cookie(LOGIN_COOKIE, path="/auth")
    return response


def _end_session(db: Database, token: str) -> None:
    with db.transaction() as session:
        web_sessions.end(session, token)


@router.post(
    "/logout", status_code=303, response_class=RedirectResponse,
    responses={303: {"description": "Redirect to the identity provider's sign-out."},
               **error_responses(403, 413, 422)},
)
async def logout(request: Request) -> RedirectResponse:
    """Revoke the session and forget its cookie, then sign out at the identity provider
    too: a copy of the cookie signs nobody in any more. A POST (the console's "sign out"
    button) with the form's CSRF token when a session cookie is present, so another site
    cannot sign people out; without a cookie there is nothing to forget and no token is
    needed."""
    settings = _settings(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        check_csrf(request, await read_form(request))
        token = session_token(session_signer(settings), cookie)
        if token is not None:
            db: Database = request.app.state.database
            await run_in_threadpool(_end_session, db, token)
    provider: IdentityProvider | None = getattr(request.app.state, "identity", None)
    home = settings.public_url.rstrip("/") + "/console/signed-out"
    target = home
    if provider is not None and provider.web is not None:
        target = provider.web.logout_url(return_to=home)
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
