"""Invites, acceptance, removal and project assignment (services on a rolled-back session)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hopsplane.clusters.hooks import ClusterHooks
from hopsplane.crypto import SecretBox
from hopsplane.db.models import AccountCluster, HopsworksCluster, User
from hopsplane.errors import Conflict, Forbidden, Gone, Invalid, NotFound
from hopsplane.integrations.email import LogMailer
from hopsplane.teams import service as teams
from hopsplane.teams.rules import hash_token
from tests.factories import RecordingHooks, make_user, post


@pytest.fixture
def mailer() -> LogMailer:
    return LogMailer()


@pytest.fixture
def ctx(mailer: LogMailer) -> teams.InviteContext:
    return teams.InviteContext(mailer=mailer, public_url="https://console.test/",
                               default_expiry_days=7)


@pytest.fixture
def hooks() -> RecordingHooks:
    return RecordingHooks()


@pytest.fixture
def owner(session: Session) -> str:
    return make_user(session)


def email_of(session: Session, uid: str) -> str:
    return session.get(User, uid).email  # type: ignore[union-attr]


def invitee(session: Session) -> tuple[str, str]:
    uid = make_user(session)
    return uid, email_of(session, uid)


def test_an_invite_stores_only_the_hash_and_mails_the_link(
    session: Session, ctx: teams.InviteContext, mailer: LogMailer, owner: str
) -> None:
    issued = teams.create_invite(session, ctx, owner, " Zoe@Example.com ")
    assert issued.invite.email == "zoe@example.com" and issued.invite.status == "pending"
    assert len(issued.token) >= 43  # 256 bits, base64url
    row = session.execute(text("SELECT token_hash FROM team_invites WHERE id = :id"),
                          {"id": issued.invite.id}).scalar_one()
    assert row == hash_token(issued.token) and issued.token not in row
    [mail] = mailer.sent
    assert mail.to == "zoe@example.com"
    assert f"https://console.test/console/invites/accept?token={issued.token}" in mail.body
    days = (issued.invite.expires_at - issued.invite.created_at).days
    assert days == 7


def test_expiry_is_bounded(session: Session, ctx: teams.InviteContext, owner: str) -> None:
    assert teams.create_invite(session, ctx, owner, "a@example.com", 30).invite
    with pytest.raises(Invalid, match="1 to 30 days"):
        teams.create_invite(session, ctx, owner, "b@example.com", 31)


def test_one_live_invite_per_email_but_an_expired_one_makes_room(
    session: Session, ctx: teams.InviteContext, owner: str
) -> None:
    first = teams.create_invite(session, ctx, owner, "dup@example.com")
    repeat = teams.create_invite(session, ctx, owner, "DUP@example.com")
    assert not repeat.created and repeat.token is None  # the original, and no second email
    assert repeat.invite == first.invite
    assert len(ctx.mailer.sent) == 1  # type: ignore[attr-defined]
    # the database's own rule, under the service's
    with pytest.raises(IntegrityError), session.begin_nested():
        session.execute(text(
            "INSERT INTO team_invites (account_owner_id, email, token_hash, expires_at) "
            "VALUES (:o, 'Dup@example.com', :h, now() + interval '1 day')"),
            {"o": owner, "h": "0" * 64})
    session.execute(text("UPDATE team_invites SET created_at = now() - interval '10 days', "
                         "expires_at = now() - interval '1 day' WHERE id = :id"),
                    {"id": first.invite.id})
    second = teams.create_invite(session, ctx, owner, "dup@example.com")
    assert second.invite.id != first.invite.id
    revoked = session.execute(text("SELECT revoked_at FROM team_invites WHERE id = :id"),
                              {"id": first.invite.id}).scalar_one()
    assert revoked is not None


def test_resend_rotates_the_token(
    session: Session, ctx: teams.InviteContext, hooks: RecordingHooks, owner: str
) -> None:
    uid, email = invitee(session)
    old = teams.create_invite(session, ctx, owner, email)
    new = teams.resend_invite(session, ctx, owner, old.invite.id)
    assert new.token != old.token and new.invite.id == old.invite.id
    with pytest.raises(NotFound):
        teams.accept_invite(session, hooks, uid, email, True, old.token)
    assert teams.accept_invite(session, hooks, uid, email, True, new.token).account_owner_id == owner


def test_accept_makes_a_member_and_the_token_is_single_use(
    session: Session, ctx: teams.InviteContext, hooks: RecordingHooks, owner: str
) -> None:
    uid, email = invitee(session)
    issued = teams.create_invite(session, ctx, owner, email.upper())
    membership = teams.accept_invite(session, hooks, uid, email, True, issued.token)
    assert membership.member_id == uid and membership.account_owner_id == owner
    session.expire_all()
    assert session.get(User, uid).account_owner_id == owner  # type: ignore[union-attr]
    assert ("member_joined", uid, owner) in hooks.events
    again = teams.accept_invite(session, hooks, uid, email, True, issued.token)
    assert again == membership  # a retry by the same user returns the original outcome
    assert hooks.events.count(("member_joined", uid, owner)) == 1
    other, _ = invitee(session)
    with pytest.raises(Gone, match="already used"):
        teams.accept_invite(session, hooks, other, email, True, issued.token)
    assert [m.id for m in teams.list_members(session, owner, limit=10)] == [uid]
    assert teams.list_pending(session, owner, limit=10) == []


def test_distinct_errors_for_unknown_revoked_and_expired(
    session: Session, ctx: teams.InviteContext, hooks: RecordingHooks, owner: str
) -> None:
    uid, email = invitee(session)
    with pytest.raises(NotFound, match="not valid"):
        teams.accept_invite(session, hooks, uid, email, True, "x" * 43)
    with pytest.raises(NotFound):
        teams.accept_invite(session, hooks, uid, email, True, "")
    revoked = teams.create_invite(session, ctx, owner, email)
    teams.revoke_invite(session, owner, revoked.invite.id)
    with pytest.raises(Gone, match="revoked"):
        teams.accept_invite(session, hooks, uid, email, True, revoked.token)
    expired = teams.create_invite(session, ctx, owner, email)
    session.execute(text("UPDATE team_invites SET created_at = now() - interval '10 days', "
                         "expires_at = now() - interval '1 second' WHERE id = :id"),
                    {"id": expired.invite.id})
    with pytest.raises(Gone, match="expired"):
        teams.accept_invite(session, hooks, uid, email, True, expired.token)


def test_the_verified_email_must_be_the_invited_one(
    session: Session, ctx: teams.InviteContext, hooks: RecordingHooks, owner: str
) -> None:
    uid, email = invitee(session)
    issued = teams.create_invite(session, ctx, owner, email)
    with pytest.raises(Forbidden, match="verify"):
        teams.accept_invite(session, hooks, uid, email, False, issued.token)
    other, other_email = invitee(session)
    with pytest.raises(Forbidden, match="different email"):
        teams.accept_invite(session, hooks, other, other_email, True, issued.token)
    assert session.get(User, uid).account_owner_id is None  # type: ignore[union-attr]


def test_an_owner_with_credits_usage_or_members_is_told_why_not(
    session: Session, ctx: teams.InviteContext, hooks: RecordingHooks, owner: str
) -> None:
    rich, email = invitee(session)
    post(session, rich, "grant", "10.00")
    issued = teams.create_invite(session, ctx, owner, email)
    with pytest.raises(Conflict, match="credits history"):
        teams.accept_invite(session, hooks, rich, email, True, issued.token)

    boss, boss_email = invitee(session)
    make_user(session, owner=boss)
    issued = teams.create_invite(session, ctx, owner, boss_email)
    with pytest.raises(Conflict, match="1 team member"):
        teams.accept_invite(session, hooks, boss, boss_email, True, issued.token)

    user, user_email = invitee(session)
    session.execute(text("INSERT INTO usage_tracking (account_owner_id, date, compute_units, "
                         "user_breakdown) VALUES (:a, current_date, 5, "
                         "jsonb_build_object(CAST(:a AS text), 5))"), {"a": user})
    issued = teams.create_invite(session, ctx, owner, user_email)
    with pytest.raises(Conflict, match="recorded usage"):
        teams.accept_invite(session, hooks, user, user_email, True, issued.token)


def test_an_owner_with_only_a_cluster_assignment_and_invites_may_join(
    session: Session, ctx: teams.InviteContext, hooks: RecordingHooks, owner: str
) -> None:
    newbie, email = invitee(session)
    box = SecretBox([SecretBox.generate_key()])
    cluster = HopsworksCluster(name="c1", api_url="https://c1", api_key=box.encrypt("k"))
    session.add(cluster)
    session.flush()
    session.add(AccountCluster(account_owner_id=newbie, hopsworks_cluster_id=cluster.id))
    session.flush()
    teams.create_invite(session, ctx, newbie, "friend@example.com")  # their own, unaccepted
    issued = teams.create_invite(session, ctx, owner, email)
    # The clusters domain releases the assignment when it hears the account is closing.
    teams.accept_invite(session, ClusterHooks(), newbie, email, True, issued.token)
    left = session.execute(text(
        "SELECT (SELECT count(*) FROM account_clusters WHERE account_owner_id = :u) + "
        "(SELECT count(*) FROM team_invites WHERE account_owner_id = :u)"), {"u": newbie})
    assert left.scalar_one() == 0


def test_members_cannot_join_twice_or_elsewhere(
    session: Session, ctx: teams.InviteContext, hooks: RecordingHooks, owner: str
) -> None:
    uid, email = invitee(session)
    teams.accept_invite(session, hooks, uid, email, True,
                        teams.create_invite(session, ctx, owner, email).token)
    other_owner = make_user(session)
    elsewhere = teams.create_invite(session, ctx, other_owner, email)
    with pytest.raises(Conflict, match="member of another account"):
        teams.accept_invite(session, hooks, uid, email, True, elsewhere.token)
    with pytest.raises(Conflict, match="already a member"):
        teams.create_invite(session, ctx, owner, email)


def test_remove_member_leaves_a_fresh_owner(
    session: Session, ctx: teams.InviteContext, hooks: RecordingHooks, owner: str
) -> None:
    uid, email = invitee(session)
    teams.accept_invite(session, hooks, uid, email, True,
                        teams.create_invite(session, ctx, owner, email).token)
    teams.assign_project(session, hooks, owner, uid, 42)
    out = teams.remove_member(session, hooks, owner, uid)
    assert out.hopsworks_project_id is None
    session.expire_all()
    user = session.get(User, uid)
    assert user is not None and user.account_owner_id is None
    assert hooks.events[-2:] == [("member_removed", uid, owner), ("account_created", uid)]
    with pytest.raises(NotFound):
        teams.remove_member(session, hooks, owner, uid)


def test_assign_project_only_to_own_members(
    session: Session, ctx: teams.InviteContext, hooks: RecordingHooks, owner: str
) -> None:
    uid, email = invitee(session)
    teams.accept_invite(session, hooks, uid, email, True,
                        teams.create_invite(session, ctx, owner, email).token)
    assert teams.assign_project(session, hooks, owner, uid, 7).hopsworks_project_id == 7
    assert ("project_assigned", uid, "7") in hooks.events
    stranger = make_user(session)
    with pytest.raises(NotFound):
        teams.assign_project(session, hooks, stranger, uid, 8)
    with pytest.raises(NotFound):
        teams.assign_project(session, hooks, owner, stranger, 8)


def test_owners_only_see_their_own_invites(
    session: Session, ctx: teams.InviteContext, owner: str
) -> None:
    issued = teams.create_invite(session, ctx, owner, "mine@example.com")
    other = make_user(session)
    assert teams.list_pending(session, other, limit=10) == []
    with pytest.raises(NotFound):
        teams.revoke_invite(session, other, issued.invite.id)
    with pytest.raises(NotFound):
        teams.revoke_invite(session, owner, uuid.uuid4())


def test_you_cannot_invite_yourself(session: Session, ctx: teams.InviteContext, owner: str) -> None:
    with pytest.raises(Invalid, match="yourself"):
        teams.create_invite(session, ctx, owner, email_of(session, owner))
