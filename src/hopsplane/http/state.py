"""What a request reads from the app's wiring (``app.state``): the account hooks, the invite
context, the Stripe gateway and the rate limits of invites. Shared by the API's routers and
the console's pages, which must behave the same."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from hopsplane.config import Settings
from hopsplane.db.engine import Database
from hopsplane.errors import Unavailable
from hopsplane.hooks import AccountHooks
from hopsplane.http.deps import Principal
from hopsplane.integrations.email import Mailer
from hopsplane.integrations.stripe.types import StripeGateway
from hopsplane.payments.autotopup import service as autotopup
from hopsplane.payments.autotopup.rules import Limits
from hopsplane.ratelimits import service as ratelimits
from hopsplane.teams import service as teams


def invite_context(request: Request) -> teams.InviteContext:
    settings: Settings = request.app.state.settings
    mailer: Mailer = request.app.state.mailer
    return teams.InviteContext(
        mailer=mailer,
        public_url=settings.public_url,
        default_expiry_days=settings.invite_expiry_days,
        show_link=settings.environment == "development" and not mailer.delivers,
    )


def account_hooks(request: Request) -> AccountHooks:
    hooks: AccountHooks = request.app.state.account_hooks
    return hooks


def _limit(request: Request, bucket: str, limit: int, what: str) -> None:
    """Count the attempt in its own committed transaction, then refuse if over the limit."""
    db: Database = request.app.state.database
    with db.transaction() as s:
        attempt = ratelimits.record(s, bucket)
    ratelimits.enforce(attempt, limit=limit, what=what)


def limit_accepts(request: Request, principal: Principal) -> None:
    settings: Settings = request.app.state.settings
    _limit(request, f"invite:accept:{principal.user_id}",
           settings.rate_limit_accepts_per_hour, "invite acceptance attempts")


def limit_invites(request: Request, principal: Principal) -> None:
    settings: Settings = request.app.state.settings
    _limit(request, f"invite:send:{principal.account_id}",
           settings.rate_limit_invites_per_hour, "invites sent")


def stripe_gateway(request: Request) -> StripeGateway:
    gateway: StripeGateway | None = getattr(request.app.state, "stripe", None)
    if gateway is None:
        raise Unavailable(
            "payments are not configured on this server (HOPSPLANE_STRIPE_SECRET_KEY)"
        )
    return gateway


GatewayDep = Annotated[StripeGateway, Depends(stripe_gateway)]


def auto_topup_limits(request: Request) -> Limits:
    """The auto top-up limits of the app's settings."""
    return autotopup.limits_from(request.app.state.settings)


LimitsDep = Annotated[Limits, Depends(auto_topup_limits)]
