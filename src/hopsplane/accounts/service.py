"""Use cases of accounts. Functions take the session first and never commit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from hopsplane.accounts import repository as repo
from hopsplane.accounts.rules import normalise_email, role_of
from hopsplane.accounts.schemas import Account, Profile, SignIn, UserSummary
from hopsplane.audit import service as audit
from hopsplane.db.models import User
from hopsplane.errors import Forbidden, Invalid, NotFound, Unauthorized
from hopsplane.hooks import AccountHooks


def sign_in(session: Session, hooks: AccountHooks, identity: SignIn) -> Account:
    """The user behind a verified identity. The first request of a new subject creates an
    account owner (and tells the hooks); every request refreshes ``last_login_at`` at most
    once a minute."""
    known = repo.touch_and_get(session, identity.sub)  # one round trip, every request
    if known is not None:
        return Account(
            user_id=known.id,
            email=known.email,
            account_owner_id=known.account_owner_id,
            is_platform_admin=known.is_platform_admin,
            created=False,
        )
    user = repo.get(session, identity.sub)
    created = False
    if user is None:
        if not identity.email:
            raise Unauthorized(
                "the access token carries no email: add the Auth0 Action described in "
                "docs/auth0.md so that tokens include the namespaced email claims"
            )
        try:
            email = normalise_email(identity.email)
        except Invalid as exc:
            raise Unauthorized(f"the access token's email is unusable: {exc.message}") from exc
        created = repo.insert_owner(session, identity.sub, email, identity.name)
        user = repo.get(session, identity.sub)
        if user is None:
            raise Forbidden(
                f"the email {email} already belongs to another sign-in identity; "
                "sign in the way you signed up, or ask support to merge the identities"
            )
        if created:
            hooks.account_created(session, user.id)
    return Account(
        user_id=user.id,
        email=user.email,
        account_owner_id=user.account_owner_id,
        is_platform_admin=user.is_platform_admin,
        created=created,
    )


def is_address_of(account: Account, email: str | None) -> bool:
    """Whether ``email`` (a token's claim) is the account's stored address, normalised."""
    if not email:
        return False
    try:
        return normalise_email(email) == account.email
    except Invalid:
        return False


def profile(session: Session, user_id: str, *, email_verified: bool) -> Profile:
    user = repo.get(session, user_id)
    if user is None:
        raise NotFound(f"no user {user_id!r}")
    return Profile(
        id=user.id,
        email=user.email,
        name=user.name,
        role=role_of(user.account_owner_id, user.is_platform_admin),
        account_owner_id=user.account_owner_id,
        account_id=user.account_owner_id or user.id,
        is_platform_admin=user.is_platform_admin,
        email_verified=email_verified,
        hopsworks_username=user.hopsworks_username,
        hopsworks_project_id=user.hopsworks_project_id,
        created_at=user.created_at,
        last_login_at=user.last_login_at,
    )


def summary(user: User) -> UserSummary:
    return UserSummary(
        id=user.id,
        email=user.email,
        name=user.name,
        role=role_of(user.account_owner_id, user.is_platform_admin),
        account_owner_id=user.account_owner_id,
        hopsworks_project_id=user.hopsworks_project_id,
        created_at=user.created_at,
        last_login_at=user.last_login_at,
    )


def list_users(
    session: Session, *, limit: int, after: tuple[datetime, str] | None = None
) -> list[UserSummary]:
    """Every user (platform admins only; the edge enforces it)."""
    return [summary(u) for u in repo.list_users(session, limit=limit, after=after)]


def platform_admins(session: Session) -> list[UserSummary]:
    """Every platform admin (the CLI's `hopsplane admins list`)."""
    return [summary(u) for u in repo.platform_admins(session)]


def find_user(session: Session, id_or_email: str) -> UserSummary:
    """A user by Auth0 id or by email (what an operator has at hand)."""
    return summary(_find(session, id_or_email))


def set_platform_admin(session: Session, id_or_email: str, admin: bool) -> UserSummary:
    """Grant or revoke platform admin (the CLI's `hopsplane admins grant|revoke`). The
    user must have signed in once (the row is made at the first sign-in)."""
    user = _find(session, id_or_email)
    before = user.is_platform_admin
    user.is_platform_admin = admin
    session.flush()
    audit.record(session, "admins.granted" if admin else "admins.revoked",
                 account_id=None, target=f"user:{user.id}",  # platform-wide, not an account's
                 before={"is_platform_admin": before}, after={"is_platform_admin": admin})
    return summary(user)


def _find(session: Session, id_or_email: str) -> User:
    wanted = id_or_email.strip()
    if not wanted:
        raise Invalid("type a user id or an email address")
    user = None
    if "@" in wanted and "|" not in wanted:
        try:  # stored addresses are normalised: look up the normalised form
            user = repo.get_by_email(session, normalise_email(wanted))
        except Invalid:
            user = repo.get_by_email(session, wanted)
    user = user or repo.get(session, wanted)
    if user is None:
        raise NotFound(
            f"no user with id or email {wanted!r} (a user exists after signing in once)"
        )
    return user


def people_of(session: Session, account_id: str, user_ids: list[str]) -> dict[str, str]:
    """How to call each of ``user_ids`` who belongs to the account now: their name and
    email (the console never shows a raw id). Ids missing from the answer belong to no
    current member (usage nobody could be attributed to, or a member who left)."""
    return {u.id: f"{u.name} ({u.email})" if u.name else u.email
            for u in repo.in_account(session, account_id, sorted(set(user_ids))[:5000])}


def people_order(session: Session, account_id: str, limit: int = 1000) -> list[str]:
    """The account's people in a stable order (owner first, then by arrival): what gives
    each person the same colour on every chart of the account."""
    return repo.ids_in_order(session, account_id, limit)


def get_user(session: Session, user_id: str) -> UserSummary:
    user = repo.get(session, user_id)
    if user is None:
        raise NotFound(f"no user {user_id!r}")
    return summary(user)


def current_account_of(session: Session, user_id: str) -> str | None:
    """The account a user belongs to now: their own id while they own one, the owner's id
    once they joined a team; None for an unknown user."""
    user = repo.get(session, user_id)
    if user is None:
        return None
    return user.account_owner_id or user.id
