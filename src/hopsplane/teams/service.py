"""Use cases of teams. Functions take the session first and never commit.

Invites: only the SHA-256 of a token is stored; the token itself exists only in the email
(and in the return value of :func:`create_invite` / :func:`resend_invite`). When the server
cannot send email in development, the link is handed to the inviting owner in the answer
(``accept_link``) instead; it is never logged. One live invite per (account, email) is the
database's rule (a partial unique index); expired ones are revoked first so that they do
not block a new one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hopsplane.accounts.rules import normalise_email
from hopsplane.audit import service as audit
from hopsplane.credits import service as credits
from hopsplane.db.models import TeamInvite, User
from hopsplane.errors import Conflict, Forbidden, Gone, Invalid, NotFound
from hopsplane.hooks import AccountHooks
from hopsplane.integrations.email import Mailer
from hopsplane.integrations.email.templates import render
from hopsplane.notices import service as notices
from hopsplane.notices.schemas import AccountEvent
from hopsplane.teams import repository as repo
from hopsplane.teams.rules import (
    accept_link,
    blockers,
    expiry,
    hash_token,
    new_token,
    plausible_token,
)
from hopsplane.teams.schemas import InviteOut, InviteStatus, MemberOut, Membership
from hopsplane.usage import service as usage


@dataclass(frozen=True, slots=True)
class InviteContext:
    """What sending an invite needs from the edge."""

    mailer: Mailer
    public_url: str
    default_expiry_days: int
    show_link: bool = False
    """Development without SMTP: the answer carries the link for the owner to pass on."""


@dataclass(frozen=True, slots=True)
class IssuedInvite:
    invite: InviteOut
    token: str | None  # for the email (and tests) only: never stored, never returned by the API
    created: bool = True  # False: a live invite for that email existed and is returned as is


def create_invite(
    session: Session, ctx: InviteContext, account_id: str, email: str,
    expires_in_days: int | None = None,
) -> IssuedInvite:
    """Invite an email. Idempotent by (account, email): while an invite for that address is
    pending, asking again returns it unchanged and sends nothing (use resend for that)."""
    address = normalise_email(email)
    owner = _owner(session, account_id)
    if _same_address(owner.email, address):
        raise Invalid("you cannot invite yourself")
    if repo.member_exists(session, account_id, address):
        raise Conflict(f"{address} is already a member of this account")
    repo.revoke_expired_live(session, account_id, address)
    now = repo.now(session)
    existing = repo.live_invite(session, account_id, address)
    if existing is not None:  # a repeat (e.g. a retried request): the original, no new email
        return IssuedInvite(invite_out(existing, now), None, created=False)
    token = new_token()
    expires_at = expiry(now, expires_in_days or ctx.default_expiry_days)
    try:
        with session.begin_nested():
            invite = repo.insert_invite(session, account_id, address, hash_token(token), expires_at)
    except IntegrityError as exc:
        if _constraint(exc) == "team_invites_one_live_per_email":
            raise Conflict(  # only when a concurrent request made it first
                f"{address} already has a pending invite: resend or revoke it instead"
            ) from exc
        raise
    audit.record(session, "teams.invite_sent", account_id=account_id, target=f"invite:{invite.id}",
                 after={"email": address, "expires_at": expires_at})
    link = _send(ctx, owner, address, token, expires_at)
    return IssuedInvite(invite_out(invite, now, link), token)


def resend_invite(
    session: Session, ctx: InviteContext, account_id: str, invite_id: uuid.UUID,
    expires_in_days: int | None = None,
) -> IssuedInvite:
    """A new token (the old link stops working) and a fresh expiry, sent again."""
    owner = _owner(session, account_id)
    invite = _invite(session, account_id, invite_id)
    if invite.accepted_at is not None:
        raise Conflict("this invite was already accepted")
    if invite.revoked_at is not None:
        raise Conflict("this invite was revoked: send a new one")
    now = repo.now(session)
    token = new_token()
    before = {"email": invite.email, "expires_at": invite.expires_at, "resent": False}
    invite.token_hash = hash_token(token)
    invite.expires_at = expiry(now, expires_in_days or ctx.default_expiry_days)
    session.flush()
    audit.record(session, "teams.invite_resent", account_id=account_id,
                 target=f"invite:{invite.id}", before=before,
                 after={"email": invite.email, "expires_at": invite.expires_at, "resent": True})
    link = _send(ctx, owner, invite.email, token, invite.expires_at)
    return IssuedInvite(invite_out(invite, now, link), token)


def revoke_invite(session: Session, account_id: str, invite_id: uuid.UUID) -> InviteOut:
    invite = _invite(session, account_id, invite_id)
    if invite.accepted_at is not None:
        raise Conflict("this invite was already accepted: remove the member instead")
    now = repo.now(session)
    if invite.revoked_at is None:
        invite.revoked_at = now
        session.flush()
        audit.record(session, "teams.invite_revoked", account_id=account_id,
                     target=f"invite:{invite.id}", before={"email": invite.email},
                     after={"email": invite.email, "revoked_at": now})
    return invite_out(invite, now)


def list_pending(
    session: Session, account_id: str, *, limit: int,
    after: tuple[datetime, uuid.UUID] | None = None,
) -> list[InviteOut]:
    now = repo.now(session)
    rows = repo.list_pending(session, account_id, limit=limit, after=after)
    return [invite_out(i, now) for i in rows]


@dataclass(frozen=True, slots=True)
class InvitePreview:
    """What the page of an invite link says before anyone joins: who invited which
    address to whose team, and whether the signed-in person is that address."""

    invited_email: str
    owner_name: str | None
    owner_email: str
    status: InviteStatus
    expires_at: datetime
    for_viewer: bool  # the signed-in person's address is the invited one


def preview_invite(session: Session, token: str, viewer_email: str) -> InvitePreview | None:
    """The invite a link's token names (None: no such invite). Reads only: the holder of
    the link learns who sent it and to which address, as the email would have told them."""
    invite = repo.invite_by_hash(session, hash_token(token)) if plausible_token(token) else None
    if invite is None:
        return None
    owner = repo.get_user(session, invite.account_owner_id)
    if owner is None:  # pragma: no cover - an invite's owner row outlives it (foreign key)
        return None
    out = invite_out(invite, repo.now(session))
    return InvitePreview(invite.email, owner.name, owner.email, out.status, invite.expires_at,
                         _same_address(viewer_email, invite.email))


def accept_invite(
    session: Session, hooks: AccountHooks, user_id: str, email: str, email_verified: bool,
    token: str,
) -> Membership:
    """Join the inviting account. ``email`` is the signed-in user's stored address and
    ``email_verified`` whether the current sign-in vouches for exactly that address; it
    must be the invited one after normalisation (``accounts.rules.normalise_email``: the
    domain IDNA and lower case, the local part lower case, nothing folded further)."""
    invite = repo.invite_by_hash(session, hash_token(token)) if plausible_token(token) else None
    if invite is None:
        raise NotFound("this invite link is not valid: check that you copied all of it")
    if invite.accepted_at is not None:
        if invite.accepted_by == user_id and _is_member_of(session, user_id, invite):
            return Membership(  # a repeat by the one who accepted it: the original outcome
                account_owner_id=invite.account_owner_id, member_id=user_id,
                invite_id=invite.id,
            )
        raise Gone("this invite was already used")
    if invite.revoked_at is not None:
        raise Gone("this invite was revoked by the account owner")
    if invite.expires_at <= repo.now(session):
        raise Gone("this invite has expired: ask the account owner to send it again")
    if not email_verified:
        raise Forbidden("verify your email address with the identity provider first")
    if not _same_address(email, invite.email):
        raise Forbidden("this invite was sent to a different email address than yours")
    owner_id = invite.account_owner_id
    if user_id == owner_id:
        raise Conflict("you cannot join your own account")
    user = repo.lock_user(session, user_id)
    if user is None:
        raise NotFound(f"no user {user_id!r}")
    if user.account_owner_id == owner_id:
        raise Conflict("you are already a member of this account")
    if user.account_owner_id is not None:
        raise Conflict(
            "you are a member of another account: ask its owner to remove you first"
        )
    reasons = blockers(
        members=repo.member_count(session, user_id),
        ledger_entries=credits.entry_count(session, user_id),
        usage_days=usage.day_count(session, user_id),
    )
    if reasons:
        raise Conflict(
            "you own an account of your own and joining would leave it behind: "
            + "; ".join(reasons)
            + ". Contact support to close or transfer it first."
        )
    # What an owner with nothing of value still holds (open Checkout Sessions, the cluster
    # assignment made at sign-up, the invites they sent) references them as an owner:
    # release it first; a listener may refuse (a payment still processing).
    hooks.listeners.announce_account_closing(session, user_id)
    hooks.account_closing(session, user_id)
    repo.delete_sent_invites(session, user_id)
    try:
        with session.begin_nested():
            repo.make_member(session, user, owner_id)
    except IntegrityError as exc:  # the database's half: something appeared meanwhile
        raise Conflict(
            "your account gained credits, usage or members while joining: not joined"
        ) from exc
    repo.mark_accepted(session, invite, user_id)
    hooks.member_joined(session, user_id, owner_id)
    audit.record(session, "teams.member_joined", account_id=owner_id, target=f"user:{user_id}",
                 before={"account_owner_id": None},
                 after={"account_owner_id": owner_id, "invite_id": invite.id})
    notices.publish(session, AccountEvent(
        "member_joined", owner_id, f"member_joined:{owner_id}:{user_id}:{invite.id}",
        {"member_id": user_id}))
    return Membership(account_owner_id=owner_id, member_id=user_id, invite_id=invite.id)


def list_members(
    session: Session, account_id: str, *, limit: int, after: tuple[datetime, str] | None = None
) -> list[MemberOut]:
    return [member_out(u) for u in repo.list_members(session, account_id, limit=limit, after=after)]


def remove_member(
    session: Session, hooks: AccountHooks, account_id: str, member_id: str
) -> MemberOut:
    """The member leaves; they become the owner of a fresh, empty account."""
    member = _member(session, account_id, member_id)
    repo.release_member(session, member)
    audit.record(session, "teams.member_removed", account_id=account_id,
                 target=f"user:{member_id}", before={"account_owner_id": account_id},
                 after={"account_owner_id": None})
    hooks.member_removed(session, member_id, account_id)
    hooks.account_created(session, member_id)
    notices.publish(session, AccountEvent(  # a removal happens once: it refuses a non-member
        "member_left", account_id, f"member_left:{account_id}:{member_id}:{uuid.uuid4()}",
        {"member_id": member_id}))
    return member_out(member)


def assign_project(
    session: Session, hooks: AccountHooks, account_id: str, member_id: str, project_id: int
) -> MemberOut:
    member = _member(session, account_id, member_id)
    before = {"project_id": member.hopsworks_project_id}
    repo.set_project(session, member, project_id)
    audit.record(session, "teams.project_assigned", account_id=account_id,
                 target=f"user:{member_id}", before=before, after={"project_id": project_id})
    hooks.project_assigned(session, member_id, project_id)
    return member_out(member)


def invite_out(invite: TeamInvite, now: datetime, link: str | None = None) -> InviteOut:
    if invite.accepted_at is not None:
        status = InviteStatus.ACCEPTED
    elif invite.revoked_at is not None:
        status = InviteStatus.REVOKED
    elif invite.expires_at <= now:
        status = InviteStatus.EXPIRED
    else:
        status = InviteStatus.PENDING
    return InviteOut(
        id=invite.id, email=invite.email, status=status, created_at=invite.created_at,
        expires_at=invite.expires_at, accepted_at=invite.accepted_at,
        accepted_by=invite.accepted_by, revoked_at=invite.revoked_at, accept_link=link,
    )


def member_out(user: User) -> MemberOut:
    return MemberOut(
        id=user.id, email=user.email, name=user.name,
        hopsworks_username=user.hopsworks_username,
        hopsworks_project_id=user.hopsworks_project_id,
        created_at=user.created_at, last_login_at=user.last_login_at,
    )


def _owner(session: Session, account_id: str) -> User:
    owner = repo.lock_user(session, account_id)
    if owner is None or owner.account_owner_id is not None:
        raise Forbidden("only an account owner may manage a team")
    return owner


def _invite(session: Session, account_id: str, invite_id: uuid.UUID) -> TeamInvite:
    invite = repo.get_invite(session, account_id, invite_id)
    if invite is None:
        raise NotFound(f"no invite {invite_id} in this account")
    return invite


def _member(session: Session, account_id: str, member_id: str) -> User:
    member = repo.get_member(session, account_id, member_id)
    if member is None:
        raise NotFound(f"no member {member_id!r} in this account")
    return member


def _send(
    ctx: InviteContext, owner: User, to: str, token: str, expires_at: datetime
) -> str | None:
    """Email the link; returns it only when ``ctx.show_link`` (development without SMTP),
    for the inviting owner to pass on. A mailer that refuses (no SMTP outside
    development) raises Unavailable, and the invite is rolled back."""
    inviter = owner.name or owner.email
    link = accept_link(ctx.public_url, token)
    ctx.mailer.send(render(
        "invite", to=to, subject=f"{inviter} invited you to their hopsplane account",
        inviter=inviter, link=link, expires=f"{expires_at.astimezone(UTC):%Y-%m-%d %H:%M}",
    ))
    return link if ctx.show_link else None


def _same_address(a: str, b: str) -> bool:
    try:
        return normalise_email(a) == normalise_email(b)
    except Invalid:
        return False


def _is_member_of(session: Session, user_id: str, invite: TeamInvite) -> bool:
    user = repo.lock_user(session, user_id)
    return user is not None and user.account_owner_id == invite.account_owner_id


def _constraint(exc: IntegrityError) -> str | None:
    name = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
    return name if isinstance(name, str) else None
