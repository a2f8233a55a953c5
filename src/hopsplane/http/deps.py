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
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import Depends, Request
from sqlalchemy.orm import Session

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


def current_principal(request: Request, session: SessionDep) -> Principal:
    authenticate: Authenticator = getattr(request.app.state, "authenticator", refuse_everyone)
    principal = authenticate(request, session)
    request.state.principal = principal
    return principal


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
