"""Decisions made below the HTTP edge: a suspension and a resumption decided by the ledger
(as the job or command that posted), a cluster move by an operator, a member leaving."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

from hopsplane.audit import service as audit
from hopsplane.audit.actors import Actor, bind
from hopsplane.billing import budgets
from hopsplane.clusters import service as clusters
from hopsplane.credits import service as credits
from hopsplane.credits.origins import OperatorGrant
from hopsplane.credits.rules import EntryType
from hopsplane.credits.schemas import Posting
from hopsplane.db.engine import Database
from hopsplane.hooks import LoggingHooks
from hopsplane.teams import service as teams
from tests import factories


def _actions(db: Database, account: str) -> list[tuple[str, str, str]]:
    with db.transaction() as s:
        return [(e.action, e.actor_kind, e.actor_id)
                for e in reversed(audit.entries(s, account_id=account, limit=100))]


def test_suspension_and_resumption_are_recorded_as_whoever_posted(fresh_db: Database) -> None:
    with fresh_db.transaction() as s:
        owner = factories.make_user(s)
        factories.post(s, owner, "grant", "1.00")
    with fresh_db.transaction() as s:  # the billing run's batch path, in a worker job
        bind(s, Actor.system("job:billing.run"))
        credits.post_many(s, [Posting(owner, EntryType.USAGE, -Decimal("3.00"),
                                      f"test:usage:{uuid.uuid4().hex}")], hooks=LoggingHooks())
    with fresh_db.transaction() as s:
        bind(s, Actor.operator("ops"))
        credits.grant(s, owner, "10.00", reason="make good", origin=OperatorGrant("mg"))
    assert _actions(fresh_db, owner) == [
        ("credits.suspended", "system", "job:billing.run"),
        ("credits.resumed", "operator_cli", "ops"),
        ("credits.grant", "operator_cli", "ops"),
    ]
    with fresh_db.transaction() as s:
        suspended = audit.entries(s, account_id=owner, action="credits.suspended")[0]
    assert suspended.before == {"suspended": False}
    assert suspended.after == {"suspended": True, "balance": "-2.00"}


def test_a_cluster_move_and_a_member_leaving_are_recorded(fresh_db: Database) -> None:
    with fresh_db.transaction() as s:
        first = factories.make_cluster(s)
        second = factories.make_cluster(s)
        owner = factories.make_user(s, cluster=first)
        member = factories.make_user(s, owner=owner)
    with fresh_db.transaction() as s:
        bind(s, Actor.operator("ops"))
        clusters.move_account(s, owner, second, assigned_by="cli:ops")
        teams.remove_member(s, LoggingHooks(), owner, member)
    with fresh_db.transaction() as s:
        moved = audit.entries(s, account_id=owner, action="clusters.assigned")
        left = audit.entries(s, account_id=owner, action="teams.member_removed")
    assert len(moved) == 1 and len(left) == 1
    assert moved[0].before == {"cluster_id": str(first), "assigned_by": None}
    assert moved[0].after == {"cluster_id": str(second), "assigned_by": "cli:ops"}
    assert left[0].target == f"user:{member}" and left[0].after == {"account_owner_id": None}


def test_an_enforced_budget_stopping_and_restoring_a_member_is_recorded(
    fresh_db: Database,
) -> None:
    nov = date(2026, 11, 1)
    with fresh_db.transaction() as s:
        owner = factories.make_user(s)
        member = factories.make_user(s, owner=owner)
        hooks = factories.RecordingHooks()
        bind(s, Actor.person(owner, "192.0.2.1"))
        budgets.set_budget(s, owner, member, "5.00", enforce=True, hooks=hooks, today=nov)
        factories.upsert_usage(s, owner, nov, "60000", {member: "60000"})
    with fresh_db.transaction() as s:
        bind(s, Actor.system("job:billing.run"))
        budgets.evaluate(s, hooks, nov)
        budgets.evaluate(s, hooks, nov)  # a repeat stops nobody twice
    with fresh_db.transaction() as s:
        bind(s, Actor.person(owner, "192.0.2.1"))
        budgets.set_budget(s, owner, member, "50.00", enforce=True, hooks=hooks, today=nov)
    assert [a for a in _actions(fresh_db, owner) if a[0].startswith("budgets.")] == [
        ("budgets.set", "person", owner),
        ("budgets.member_stopped", "system", "job:billing.run"),
        ("budgets.set", "person", owner),
        ("budgets.member_restored", "person", owner),
    ]
    with fresh_db.transaction() as s:
        [stopped] = audit.entries(s, account_id=owner, action="budgets.member_stopped")
    assert stopped.after == {"stopped": True, "spend": "6.00", "monthly_budget": "5.00"}
    assert stopped.source == "job:billing.run"


def test_a_batch_that_suspends_many_accounts_records_each_once(fresh_db: Database) -> None:
    with fresh_db.transaction() as s:
        owners = [factories.make_user(s) for _ in range(3)]
        for owner in owners:
            factories.post(s, owner, "grant", "1.00")
    with fresh_db.transaction() as s:
        bind(s, Actor.system("job:billing.run"))
        credits.post_many(s, [Posting(o, EntryType.USAGE, -Decimal("2.00"),
                                      f"test:usage:{uuid.uuid4().hex}") for o in owners]
                          + [Posting(owners[0], EntryType.USAGE, -Decimal("1.00"),
                                     f"test:usage:{uuid.uuid4().hex}")])
    for owner in owners:
        assert _actions(fresh_db, owner) == [("credits.suspended", "system", "job:billing.run")]
