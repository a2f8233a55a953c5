"""A member stopped by their budget goes through the suspension's job (the
account's status sync) against a server that answers like Hopsworks: only that member's
user is deactivated, a suspension and resumption of the account keep them off, and the
budget's restoration turns them on again."""

from sqlalchemy.orm import Session

from hopsplane.clusters.hooks import ClusterHooks
from hopsplane.crypto import SecretBox
from hopsplane.db.engine import Database
from hopsplane.devworld.hopsworks_standin import FakeHopsworks
from hopsplane.worker.runner import Worker
from tests.factories import add_cluster, make_user, signup, user

hooks = ClusterHooks()


def _statuses(hw: FakeHopsworks, owner_email: str, member_email: str) -> tuple[str, str]:
    o, m = hw.state.user_by_email(owner_email), hw.state.user_by_email(member_email)
    assert o is not None and m is not None
    return str(o["status"]), str(m["status"])


def _member(s: Session, owner: str) -> str:
    member = make_user(s, owner=owner)
    hooks.member_joined(s, member, owner)
    return member


def test_a_budget_stop_deactivates_only_that_member_until_restored(
    fresh_db: Database, box: SecretBox, hw: FakeHopsworks, worker: Worker,
) -> None:
    with fresh_db.transaction() as s:
        add_cluster(s, box, "eu-1", api_url=hw.url, api_key=hw.state.api_key)
    owner = signup(fresh_db)
    worker.run_pending()
    with fresh_db.transaction() as s:
        member = _member(s, owner)
    worker.run_pending()
    emails = user(fresh_db, owner).email, user(fresh_db, member).email
    on, off = "ACTIVATED_ACCOUNT", "DEACTIVATED_ACCOUNT"
    assert _statuses(hw, *emails) == (on, on)

    with fresh_db.transaction() as s:
        hooks.member_budget_exceeded(s, member, owner)
    worker.run_pending()
    assert _statuses(hw, *emails) == (on, off)

    with fresh_db.transaction() as s:  # the account is suspended and resumed meanwhile
        hooks.account_suspended(s, owner)
    worker.run_pending()
    assert _statuses(hw, *emails) == (off, off)
    with fresh_db.transaction() as s:
        hooks.account_resumed(s, owner)
    worker.run_pending()
    assert _statuses(hw, *emails) == (on, off)  # still over budget: stays off

    with fresh_db.transaction() as s:
        hooks.member_budget_restored(s, member, owner)
    worker.run_pending()
    assert _statuses(hw, *emails) == (on, on)
