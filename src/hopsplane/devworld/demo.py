"""`hopsplane dev --demo`: one account with data on every console page, made through the
same services as real use, so what a newcomer sees is what a customer would see.

- people sign in (the development issuer's identities, so that signing in on the console
  finds them): the owner, two members who accept the owner's invites, one invite left
  pending, and an operator who is a platform admin (with an account of their own);
- an organization with an admin and a member;
- a grant (welcome credit that expires), and top-ups credited through
  ``payments.fulfil_payment``, the one path by which a Stripe webhook's payment becomes
  credit;
- 30 days of usage up to today, per person, ingested as usage events (the admin API's
  path) and charged by a billing run;
- a monthly budget on one member.

Running it again changes nothing: every step is keyed (sign-in subjects, invites by
address, ledger keys, event ids, the organization by name). On a later day it adds the
days since, as metering would."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from hopsplane.accounts import service as accounts
from hopsplane.accounts.schemas import SignIn
from hopsplane.billing import budgets
from hopsplane.billing.rules import today_utc
from hopsplane.billing.run import run_billing
from hopsplane.config import Settings
from hopsplane.credits import service as credits
from hopsplane.credits.origins import OperatorGrant
from hopsplane.db.engine import Database
from hopsplane.errors import NotFound
from hopsplane.hooks import AccountHooks
from hopsplane.integrations.auth0 import LocalIssuer
from hopsplane.integrations.email import LogMailer
from hopsplane.organizations import service as organizations
from hopsplane.payments import service as payments
from hopsplane.payments.schemas import Payment
from hopsplane.teams import service as teams
from hopsplane.usage import service as usage
from hopsplane.usage.schemas import UsageEventIn


@dataclass(frozen=True)
class Person:
    email: str
    name: str


OWNER = Person("ada@example.com", "Ada Lovelace")
MEMBERS = (Person("grace@example.com", "Grace Hopper"), Person("alan@example.com", "Alan Turing"))
PENDING = "edsger@example.com"
OPERATOR = Person("operator@example.com", "Olu Operator")
ORGANIZATION = "Research"
DAYS = 30
GRANT = Decimal("50.00")
TOPUPS = (Decimal("100.00"), Decimal("50.00"), Decimal("25.00"))
BUDGET = Decimal("60.00")
# compute units per day of each person (owner first): a working week's rhythm, so the
# chart has a shape; 10,000 units cost 1.00 at the default price
WEEKDAY_UNITS = (9_000, 14_000, 6_500)
WEEKEND_UNITS = (1_500, 3_000, 0)


@dataclass(frozen=True)
class DemoAccount:
    owner_id: str
    owner_email: str
    operator_email: str
    usage_days: int
    balance: Decimal


def sub_of(email: str) -> str:
    """The subject the development issuer gives an address (so a console sign-in with that
    address is this user)."""
    return LocalIssuer.sub_for(email)


def fill(database: Database, settings: Settings, hooks: AccountHooks,
         progress: Callable[[str], None] = lambda _: None,
         today: date | None = None) -> DemoAccount:
    """Make (or complete) the demo account, its usage ending ``today`` (default: today,
    UTC); one transaction per step, so each step sees the last one committed, as
    separate requests would."""
    today = today or today_utc()
    progress("people")
    with database.transaction() as s:
        owner = _sign_in(s, hooks, OWNER)
        _sign_in(s, hooks, OPERATOR)
        accounts.set_platform_admin(s, OPERATOR.email, True)
    for person in MEMBERS:
        with database.transaction() as s:
            _join(s, settings, hooks, owner, person)
    with database.transaction() as s:
        teams.create_invite(s, _invites(settings), owner, PENDING)
    progress("organization")
    with database.transaction() as s:
        _organization(s, owner)
    progress("credits")
    with database.transaction() as s:
        _credits(s, settings, hooks, owner, today)
    progress("usage")
    with database.transaction() as s:
        days = _usage(s, settings, owner, today)
    run_billing(database, today, hooks=hooks,
                thresholds=settings.thresholds, batch_size=settings.billing_batch_size,
                workers=1, accounts=[owner],
                slice_days=settings.billing_slice_days)
    with database.transaction() as s:
        grace = accounts.find_user(s, MEMBERS[0].email).id
        budgets.set_budget(s, owner, grace, BUDGET, enforce=False, hooks=hooks,
                           set_by=owner, today=today)
        balance = credits.balance(s, owner)
    return DemoAccount(owner, OWNER.email, OPERATOR.email, days, balance)


def _sign_in(session: Session, hooks: AccountHooks, person: Person) -> str:
    account = accounts.sign_in(session, hooks, SignIn(
        sub=sub_of(person.email), email=person.email, email_verified=True, name=person.name))
    return account.user_id


def _invites(settings: Settings) -> teams.InviteContext:
    # the demo's people are not real: their invites are never mailed, whatever SMTP says
    return teams.InviteContext(mailer=LogMailer(), public_url=settings.public_url,
                               default_expiry_days=settings.invite_expiry_days)


def _join(session: Session, settings: Settings, hooks: AccountHooks, owner: str,
          person: Person) -> None:
    """The person signs in, the owner invites them, they accept: the console's path."""
    member = _sign_in(session, hooks, person)
    if accounts.get_user(session, member).account_owner_id == owner:
        return
    ctx = _invites(settings)
    issued = teams.create_invite(session, ctx, owner, person.email)
    if issued.token is None:  # an invite of an earlier run still pending: a new link
        issued = teams.resend_invite(session, ctx, owner, issued.invite.id)
    assert issued.token is not None
    teams.accept_invite(session, hooks, member, person.email, True, issued.token)


def _organization(session: Session, owner: str) -> None:
    found = [o for o in organizations.list_for(session, owner, owner, True)
             if o.name == ORGANIZATION]
    org = found[0] if found else organizations.create(session, owner, ORGANIZATION)
    for person, role in zip(MEMBERS, ("admin", "member"), strict=True):
        organizations.put_member(session, owner, owner, True, org.id, person.email, role)


def _credits(session: Session, settings: Settings, hooks: AccountHooks, owner: str,
             today: date) -> None:
    welcome = OperatorGrant("demo-welcome-credit")
    # its expiry depends on the day of the first fill: on a later day the same key with
    # another expiry would be another posting, which the ledger rightly refuses
    if credits.entry_by_key(session, credits.ledger_key(welcome)) is None:
        credits.grant(session, owner, GRANT, reason="welcome credit", origin=welcome,
                      granted_by="hopsplane dev",
                      expires_at=datetime.combine(today + timedelta(days=60),
                                                  datetime.min.time(), tzinfo=UTC),
                      hooks=hooks, thresholds=settings.thresholds)
    for n, amount in enumerate(TOPUPS, start=1):
        payments.fulfil_payment(session, Payment(
            account_owner_id=owner, payment_intent_id=f"pi_demo_topup_{n}", amount=amount,
            currency=settings.stripe_currency))


def _usage(session: Session, settings: Settings, owner: str, today: date) -> int:
    people = [owner] + [accounts.find_user(session, p.email).id for p in MEMBERS]
    now = datetime.now(UTC)
    events = []
    for back in range(DAYS - 1, -1, -1):
        day = today - timedelta(days=back)
        units = WEEKEND_UNITS if day.weekday() >= 5 else WEEKDAY_UNITS
        for n, (person, base) in enumerate(zip(people, units, strict=True)):
            # a day's figures depend on the day alone (a repeat is ignored by its id anyway)
            wobble = 1 + ((day.toordinal() * (n + 3) * 37) % 41 - 20) / 50
            if base:
                events.append(UsageEventIn(
                    id=f"demo:{day.isoformat()}:{person}", account_id=person, user_id=person,
                    timestamp=min(now, datetime.combine(day, datetime.min.time(),
                                                        tzinfo=UTC) + timedelta(hours=12)),
                    compute_units=str(int(base * wobble))))
    usage.ingest(session, events, usage.Submitter(max_age_days=settings.usage_max_age_days))
    return DAYS


def owner_of_demo(session: Session) -> str | None:
    """The demo owner's user id, when the demo was filled."""
    try:
        return accounts.find_user(session, OWNER.email).id
    except NotFound:
        return None
