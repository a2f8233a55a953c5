"""Dependencies shared by the routers: the request's database session, who is calling, and
the role guards every route declares.

Who is calling is decided by the app's ``authenticator`` (``app.state.authenticator``):
a callable that takes the request and the session and returns a :class:`Principal`, or
raises Unauthorized. Until an identity provider is configured, every authenticated route
answers 401. Guards:

- no guard: anonymous (health, metrics, webhooks that carry their own signature);
- ``MemberDep``: any signed-in user (owner or team member, admin too);
- ``OwnerDep``: an account owner (``account_owner_id`` is NULL);
- ``AdminDep``: a platform admin;
- ``LedgerDep``, ``BuyDep``, ``TeamDep``: the account owner, or a person of the account
  whose organization role delegates it (``billing``: ledger and buying; ``admin``: those
  and the team). Such a route acts on ``principal.account_id`` (the owner's account).

An API key (``Authorization: Bearer hpk_live_…``) is a principal too: it acts as its
account, on the routes that state a scope it holds (``http.apikeys.key_scope``) and on no
other (403). Whoever the principal is, it is bound to the request's session as the actor
of every decision the audit log records.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import Depends, Request
from sqlalchemy.orm import Session

from hopsplane.apikeys import rules as key_rules
from hopsplane.apikeys import service as api_keys
from hopsplane.audit.actors import Actor
from hopsplane.audit.actors import bind as bind_actor
from hopsplane.credits.schemas import BalancePolicy
from hopsplane.db.engine import Database
from hopsplane.errors import Forbidden, Unauthorized
from hopsplane.hooks import AccountHooks
from hopsplane.organizations import service as organizations
from hopsplane.organizations.rules import Capability


@dataclass(frozen=True, slots=True)
class Principal:
    """The signed-in user of a request, as the database knows them."""

    user_id: str
    email: str
    account_owner_id: str | None
    is_platform_admin: bool
    email_verified: bool = False
    api_key_id: str | None = None
    """Set when an API key authenticated the request (then ``user_id`` is the account's)."""
    scopes: frozenset[str] = frozenset()
    """What the API key may do (empty for a person, who is limited by role instead)."""

    @property
    def is_api_key(self) -> bool:
        return self.api_key_id is not None

    @property
    def is_owner(self) -> bool:
        return self.account_owner_id is None

    @property
    def account_id(self) -> str:
        """The account this user acts in: their owner's, or their own."""
        return self.account_owner_id or self.user_id


Authenticator = Callable[[Request, Session], Principal]


def refuse_everyone(request: Request, session: Session) -> Principal:
    raise Unauthorized("authentication is not configured on this server")


# Dependencies that do no I/O are `async def`: FastAPI runs a plain `def` dependency in a
# worker thread, a hop that costs more CPU than most of them do (see docs/scaling.md).


async def database(request: Request) -> Database:
    db: Database = request.app.state.database
    return db


async def db_session(
    request: Request, db: Annotated[Database, Depends(database)],
) -> AsyncIterator[Session]:
    """One transaction per request: committed before the response is sent (scope
    "function"), rolled back if the endpoint raises. While it is open it is also
    ``request.state.session``, so that code outside the dependencies (the console's page
    renderer) reads in it rather than taking a second pooled connection.

    The session takes a connection at its first statement (in the thread of the
    dependency or endpoint that runs it) and gives it back when it ends here, in a worker
    thread of its own (a limiter of its own, like FastAPI's teardown of sync
    dependencies), shielded from cancellation: ending a transaction never waits behind
    other requests for a thread, and always happens."""
    session = db.sessions()
    request.state.session = session
    # Until a principal is known (and on routes that have none, such as signed webhooks),
    # what the request decides is the system's, named by the route, from the client.
    route = request.scope.get("route")
    bind_actor(session, Actor(
        "system", f"{request.method} {getattr(route, 'path', request.url.path)}",
        _client(request), getattr(request.state, "request_id", None)))
    ok = False
    try:
        yield session
        ok = True
    finally:
        request.state.session = None
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_end, session, ok, limiter=anyio.CapacityLimiter(1))


def _end(session: Session, commit: bool) -> None:
    try:
        if commit:
            session.commit()
    finally:
        session.close()  # rolls back whatever was not committed; the connection goes back


SessionDep = Annotated[Session, Depends(db_session, scope="function")]


API_KEY_SCOPE = "x-api-key-scope"
"""The OpenAPI extension (in a route's ``openapi_extra``) naming the scope an API key needs
there; a route without it refuses API keys."""


def current_principal(request: Request, session: SessionDep) -> Principal:
    token = _bearer(request)
    if token is not None and key_rules.looks_like_key(token):
        principal = _key_principal(request, session, token)
    else:
        authenticate: Authenticator = getattr(
            request.app.state, "authenticator", refuse_everyone)
        principal = authenticate(request, session)
    request.state.principal = principal
    client = _client(request)
    request_id = getattr(request.state, "request_id", None)
    bind_actor(session, Actor.api_key(principal.api_key_id, client, request_id)
               if principal.api_key_id else Actor.person(principal.user_id, client, request_id))
    return principal


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _key_principal(request: Request, session: Session, token: str) -> Principal:
    """An API key acts as its account on the routes whose scope it holds; 401 for a key
    that is not (malformed, unknown, expired, revoked), 403 where keys may not go."""
    key = api_keys.authenticate(session, token)
    route = request.scope.get("route")
    extra = getattr(route, "openapi_extra", None) or {}
    needed = extra.get(API_KEY_SCOPE)
    if needed is None:
        raise Forbidden("API keys may not use this route: sign in as a person")
    if needed not in key.scopes:
        raise Forbidden(f"this API key lacks the scope `{needed}` this route needs")
    return Principal(
        user_id=key.account_owner_id, email="", account_owner_id=None,
        is_platform_admin=False, api_key_id=str(key.key_id), scopes=key.scopes,
    )


async def require_member(
    principal: Annotated[Principal, Depends(current_principal)],
) -> Principal:
    return principal


async def require_owner(
    principal: Annotated[Principal, Depends(current_principal)],
) -> Principal:
    if not principal.is_owner:
        raise Forbidden("only the account owner may do this")
    return principal


# A plain function: the usage router also calls it directly (admin or cluster agent).
def require_admin(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if not principal.is_platform_admin:
        raise Forbidden("only platform admins may do this")
    return principal


def capabilities(request: Request, session: Session,
                 principal: Principal) -> frozenset[Capability]:
    """What the caller may do in their account: everything for the owner, what their
    organization roles delegate for anyone else. Read once per request, in the request's
    session, and kept on the request: the guards, the usage scope and the console's
    navigation all ask, and a role does not change half-way through a request."""
    known: tuple[Principal, frozenset[Capability]] | None = getattr(
        request.state, "capabilities", None)
    if known is not None and known[0] == principal:
        return known[1]
    caps = frozenset(Capability) if principal.is_owner else organizations.capabilities_of(
        session, principal.account_id, principal.user_id)
    request.state.capabilities = (principal, caps)
    return caps


def _delegated(request: Request, principal: Principal, session: Session,
               capability: Capability) -> Principal:
    if capability in capabilities(request, session, principal):
        return principal
    raise Forbidden("only the account owner, or a person whose organization role allows it, "
                    "may do this")


def require_ledger(request: Request, principal: Annotated[Principal, Depends(current_principal)],
                   session: SessionDep) -> Principal:
    return _delegated(request, principal, session, Capability.LEDGER)


def require_buyer(request: Request, principal: Annotated[Principal, Depends(current_principal)],
                  session: SessionDep) -> Principal:
    return _delegated(request, principal, session, Capability.BUY)


def may_buy(request: Request, principal: Principal, session: Session) -> bool:
    """Whether the principal may buy credits (and see the balance) for their account."""
    return Capability.BUY in capabilities(request, session, principal)


def require_team_admin(request: Request,
                       principal: Annotated[Principal, Depends(current_principal)],
                       session: SessionDep) -> Principal:
    return _delegated(request, principal, session, Capability.TEAM)


def require_webhooks(request: Request,
                      principal: Annotated[Principal, Depends(current_principal)],
                      session: SessionDep) -> Principal:
    return _delegated(request, principal, session, Capability.WEBHOOKS)


def sees_account_usage(request: Request, principal: Principal, session: Session) -> bool:
    """The owner, and an organization admin, see the whole account's usage; anyone else
    their own share."""
    return Capability.USAGE in capabilities(request, session, principal)


MemberDep = Annotated[Principal, Depends(require_member)]
OwnerDep = Annotated[Principal, Depends(require_owner)]
AdminDep = Annotated[Principal, Depends(require_admin)]
LedgerDep = Annotated[Principal, Depends(require_ledger)]
BuyDep = Annotated[Principal, Depends(require_buyer)]
TeamDep = Annotated[Principal, Depends(require_team_admin)]
WebhooksDep = Annotated[Principal, Depends(require_webhooks)]


async def balance_policy(request: Request) -> BalancePolicy:
    """The app's account hooks and low-balance thresholds, for routes that post credit."""
    settings = request.app.state.settings
    hooks: AccountHooks | None = getattr(request.app.state, "account_hooks", None)
    return BalancePolicy(hooks=hooks, thresholds=settings.thresholds)


PolicyDep = Annotated[BalancePolicy, Depends(balance_policy)]
