"""What every console page shares: the templates, :func:`render` (a page with the caller's
capabilities, read once per request in the request's session), the error page, the
notices a redirect may name, and running a form's service call in a savepoint.

Who may see what is decided by the API's own guards (MemberDep, OwnerDep), so the route walk
of the API covers the pages too. Sign-in is the browser flow of /auth (session cookie).
Forms post ``application/x-www-form-urlencoded`` with a CSRF token bound to the caller's
session (HMAC of the session cookie under the secret key), on top of the cookie's
SameSite=Lax. A refused form re-renders its page with the reason and the 4xx status, and
changes nothing: the service call runs in a savepoint that is rolled back on error.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from sqlalchemy.orm import Session

from hopsplane.accounts import service as accounts
from hopsplane.billing.service import MAX_USAGE_DAYS
from hopsplane.db.engine import is_database_unavailable
from hopsplane.errors import AppError, Invalid
from hopsplane.http import wording
from hopsplane.http.deps import (
    Principal,
    capabilities,
)
from hopsplane.http.forms import csrf_token
from hopsplane.web import charts
from hopsplane.web.messages import title_for
from hopsplane.web.security import CONSOLE_CSS, TEMPLATES

templates = Jinja2Templates(directory=TEMPLATES)
templates.env.globals["console_css"] = CONSOLE_CSS
templates.env.globals["money"] = charts.money
templates.env.filters["units"] = charts.units
templates.env.filters["cpu_hours"] = charts.cpu_hours
templates.env.globals["describe"] = wording.describe
templates.env.globals["kind"] = wording.kind
templates.env.filters["day"] = wording.day_text
ATTEMPT_WORDS: dict[str, str] = {
    "scheduled": "about to be charged",
    "charging": "being charged",
    "processing": "waiting for the bank",
    "requires_action": "waiting for you to confirm with your bank",
    "succeeded": "paid",
    "failed": "declined",
    "canceled": "cancelled",
}
"""An auto top-up attempt's state as its owner reads it (the stored value is Stripe's)."""
templates.env.globals["attempt_word"] = lambda status: ATTEMPT_WORDS.get(status, status)


USAGE_DEFAULT_DAYS = 30

NOTICES = {
    "invited": "Invite sent.",
    "already-invited": "That address already has a pending invite; nothing was sent again.",
    "revoked": "Invite revoked: its link no longer works.",
    "resent": "Invite sent again with a new link: the old link no longer works.",
    "member-removed": "Member removed: they now have an empty account of their own, and "
                      "their usage is no longer paid by this one.",
    "project-assigned": "Project assigned: the member gets access to it in Hopsworks within "
                        "a few minutes.",
    "joined": "You joined the team: this is now the account you work in.",
    "granted": "Credit granted (a repeated form grants once).",
    "cluster-saved": "Cluster saved; its keys are stored encrypted and never shown again.",
    "signed-out": "Signed out everywhere: every browser session of this user was revoked.",
    "cluster-activate": "Cluster active: it takes new accounts.",
    "cluster-drain": "Cluster draining: it keeps its accounts and takes no new ones.",
    "cluster-disable": "Cluster disabled: it takes no accounts, not even a move by hand.",
    "cluster-assigned": "Account placed on that cluster: its Hopsworks users are being "
                        "provisioned there.",
    "budget-saved": "Budget saved and checked against this month's spend.",
    "budget-removed": "Budget removed: nothing limits that member any more.",
}
"""Messages a redirect may ask for by name (never text from the query string)."""

T = TypeVar("T")


def is_console(request: Request) -> bool:
    return request.url.path == "/console" or request.url.path.startswith("/console/")


def render(
    request: Request, template: str, principal: Principal | None, status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    currency = request.app.state.settings.stripe_currency
    caps: frozenset[str] = frozenset()
    account_of: str | None = None
    if principal is not None:
        session: Session | None = getattr(request.state, "session", None)
        if session is not None:
            caps = capabilities_of(request, session, principal)
            account_of = _account_name(session, principal)
        else:
            # An error page drawn after the request's transaction ended (its connection is
            # back in the pool): a short read of its own, never two connections at once,
            # and none at all when the request already read them. When the database is
            # what failed, the page (a 503) goes without the delegated links.
            try:
                with request.app.state.database.transaction() as own:
                    caps = capabilities_of(request, own, principal)
                    account_of = _account_name(own, principal)
            except Exception as exc:
                if not is_database_unavailable(exc):
                    raise
    return templates.TemplateResponse(
        request, template,
        {"principal": principal, "csrf": csrf_token(request), "error": None,
         "currency": currency, "caps": caps, "account_of": account_of,
         "support": request.app.state.settings.support_email, **context},
        status_code=status_code,
    )


def _account_name(session: Session, principal: Principal) -> str | None:
    """Whose account a member works in, by name (None for the owner): every page says it,
    so nobody wonders whose credits they are spending."""
    if principal.is_owner:
        return None
    try:
        owner = accounts.get_user(session, principal.account_id)
    except AppError:
        return None
    return f"{owner.name} ({owner.email})" if owner.name else owner.email


def _can_sign_in(request: Request) -> bool:
    identity = getattr(request.app.state, "identity", None)
    return identity is not None and getattr(identity, "web", None) is not None


DEFAULT_RETRY_AFTER_SECONDS = 2


def render_error(request: Request, exc: AppError) -> Response | None:
    """The console's page for an error raised before a page could render (not signed in,
    wrong role, bad query): the same status as the API would give, in HTML. None outside
    the console (the API keeps its JSON errors). Installed as ``app.state.html_errors``.

    A signed-out visitor opening a page (a GET) is sent to sign in and brought back to the
    very address (an invite link keeps its token); a form posted without a session, or a
    server without browser sign-in, gets the 401 page with a sign-in link."""
    if not is_console(request):
        return None
    principal = getattr(request.state, "principal", None)
    if (exc.status == 401 and principal is None and request.method == "GET"
            and _can_sign_in(request)):
        return RedirectResponse(
            "/auth/login?return_to=" + quote(_here(request), safe="/"), status_code=303)
    message = sentence(exc.message)
    if exc.status == 404 and exc.message.strip() in ("Not Found", ""):
        message = ("There is no page at this address: check the link, or go back to your "
                   "account.")
    page = render(request, "error.html", principal, exc.status, title=title_for(exc),
                  message=message, status=exc.status, code=exc.code)
    if exc.status == 503:  # as the API's 503s: when to come back
        retry = exc.context.get("retry_after")
        page.headers["Retry-After"] = str(retry if isinstance(retry, int) else
                                          DEFAULT_RETRY_AFTER_SECONDS)
    return page


def capabilities_of(request: Request, session: Session,
                    principal: Principal) -> frozenset[str]:
    """What the caller may do beyond their own pages (the navigation shows those), read once
    per request in the request's session (:func:`hopsplane.http.deps.capabilities`)."""
    return frozenset(c.value for c in capabilities(request, session, principal))


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + ("?" + query if query else "")


def attempt(session: Session, action: Callable[[], T]) -> T:
    """Run a service call in a savepoint: on a refusal, nothing it wrote stays."""
    with session.begin_nested():
        return action()



def date_range(date_from: str, date_to: str) -> tuple[date, date]:
    """The dates typed in the range picker (ISO ``YYYY-MM-DD``); empty: the last 30 days.
    A range the page cannot show is refused here, in the words of the picker (the services
    refuse the same with the API's words)."""
    try:
        last = date.fromisoformat(date_to) if date_to else date.today()
    except ValueError as exc:
        raise Invalid("The end date is not a date: write it as YYYY-MM-DD, for example "
                      "2026-01-31.") from exc
    try:
        first = date.fromisoformat(date_from) if date_from else max(
            date.min, last - timedelta(days=min(USAGE_DEFAULT_DAYS - 1, (last - date.min).days)))
    except ValueError as exc:
        raise Invalid("The start date is not a date: write it as YYYY-MM-DD, for example "
                      "2026-01-01.") from exc
    if last < first:
        raise Invalid("The end date is before the start date: pick an end date on or after "
                      "the start date.")
    if (last - first).days >= MAX_USAGE_DAYS:
        raise Invalid(f"Pick a range of at most {MAX_USAGE_DAYS} days: a longer one does not "
                      "fit on one page (download a year at a time as CSV).")
    return first, last


def first_error(exc: ValidationError, fields: dict[str, str] | None = None) -> str:
    """A refused form's first field, in words: ``fields`` names each form field as the
    form's label does (``{"api_url": "The API URL"}``); pydantic's own message follows."""
    error = exc.errors()[0]
    name = str(error["loc"][0]) if error["loc"] else ""
    label = (fields or {}).get(name, name.replace("_", " ").capitalize() or "A field")
    msg = str(error["msg"])
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return sentence(f"{label}: {msg[:1].lower()}{msg[1:]}")


def sentence(text: str) -> str:
    """A message as a sentence: a capital first letter and a full stop."""
    text = text.strip()
    if not text:
        return text
    text = text[:1].upper() + text[1:]
    return text if text[-1] in ".!?:" else text + "."



_AMOUNT = re.compile(r"^[+-]?[0-9][0-9,]*(\.[0-9]*)?$")


def check_amount(typed: str, what: str, currency: str, *, minimum: Decimal | None = None,
                 maximum: Decimal | None = None, example: str = "50.00") -> None:
    """A money field of a form, refused in that field's words, per case (empty, not a
    number, fractions of a cent, too small, too large), before a service sees it: ``what``
    names the field as its label does ("The amount", "A monthly budget")."""
    text = typed.strip().replace(",", "")
    low = minimum if minimum is not None else Decimal("0.01")
    if not text:
        raise Invalid(f"{what} is empty: type an amount, for example {example}.")
    if not _AMOUNT.match(text) or text in {"+", "-"}:
        raise Invalid(f"{what} must be an amount in {currency.upper()}, for example "
                      f"{example}: “{typed.strip()[:40]}” is not one.")
    if "." in text and len(text.split(".", 1)[1].rstrip("0")) > 2:
        raise Invalid(f"{what} is in whole cents: at most two decimals, for example {example}.")
    try:
        value = Decimal(text)
    except ArithmeticError as exc:  # pragma: no cover - the pattern admits only numbers
        raise Invalid(f"{what} must be an amount, for example {example}.") from exc
    if value <= 0 and low > 0:
        raise Invalid(f"{what} must be a positive amount, for example {example}.")
    if value < low:
        raise Invalid(f"{what} must be at least {charts.money(low, currency)}.")
    if maximum is not None and value > maximum:
        raise Invalid(f"{what} can be at most {charts.money(maximum, currency)}.")
