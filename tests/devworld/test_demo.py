"""The demo account of `hopsplane dev --demo`, made through the real services: every page's
data is there, a second fill adds nothing, and the stand-in registered as a cluster places
and provisions the account end to end (then keeps its projects across a restart)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import text

from hopsplane.billing.rules import today_utc
from hopsplane.composition import jobs as schedule
from hopsplane.composition.hooks import build_account_hooks
from hopsplane.config import Settings
from hopsplane.crypto import SecretBox
from hopsplane.db.engine import Database
from hopsplane.devworld import demo, world
from hopsplane.worker.runner import Worker

COUNTS = {
    "users": "SELECT count(*) FROM users",
    "members": "SELECT count(*) FROM users WHERE account_owner_id IS NOT NULL",
    "ledger": "SELECT count(*) FROM credits_ledger",
    "usage days": "SELECT count(*) FROM usage_tracking",
    "invites": "SELECT count(*) FROM team_invites",
    "organizations": "SELECT count(*) FROM organizations",
    "organization members": "SELECT count(*) FROM organization_members",
    "clusters": "SELECT count(*) FROM hopsworks_clusters",
}


def counts(db: Database) -> dict[str, int]:
    with db.transaction() as s:
        return {k: int(s.execute(text(q)).scalar_one()) for k, q in COUNTS.items()}


def drain(worker: Worker) -> None:
    for _ in range(20):
        if worker.run_pending() == 0:
            return


def test_the_demo_fills_every_page_once_and_the_standin_provisions_it(
    fresh_db: Database, settings: Settings, box: SecretBox, tmp_path: Path
) -> None:
    standin = world.start_standin(tmp_path)
    try:
        with fresh_db.transaction() as s:
            cluster = world.register_standin(s, box, standin)
        hooks = build_account_hooks(settings)
        today = today_utc()  # both fills end on one day, even across midnight
        yesterday = today - timedelta(days=1)
        account = demo.fill(fresh_db, settings, hooks, today=yesterday)
        first = counts(fresh_db)
        assert first["members"] == len(demo.MEMBERS)
        assert first["usage days"] == demo.DAYS
        assert first["organization members"] == len(demo.MEMBERS)
        assert first["invites"] == len(demo.MEMBERS) + 1  # two accepted, one pending
        # grant + top-ups + one usage debit per day
        assert first["ledger"] == 1 + len(demo.TOPUPS) + demo.DAYS
        assert account.balance > 0  # the demo is an account in good standing

        again = demo.fill(fresh_db, settings, hooks, today=yesterday)
        assert counts(fresh_db) == first
        assert again.balance == account.balance

        # a day later: the day since is added and charged, nothing else
        later = demo.fill(fresh_db, settings, hooks, today=today)
        assert counts(fresh_db) == first | {"usage days": demo.DAYS + 1,
                                            "ledger": first["ledger"] + 1}
        assert later.balance < account.balance

        # the worker places the account on the stand-in and provisions it there
        worker = Worker(fresh_db, schedule.handlers(), schedule.periodic_tasks(),
                        services=schedule.services(settings, fresh_db))
        drain(worker)
        with fresh_db.transaction() as s:
            placed, project = s.execute(text(
                "SELECT ac.hopsworks_cluster_id, u.hopsworks_project_id FROM users u "
                "JOIN account_clusters ac ON ac.account_owner_id = u.id WHERE u.id = :o"),
                {"o": account.owner_id}).one()
            failed = s.execute(text(
                "SELECT task, last_error FROM hopsplane.jobs WHERE status = 'failed'")).all()
        assert placed == cluster.id and failed == []
        assert standin.state.projects[project]["owner"] == demo.OWNER.email
        members = standin.state.projects[project]["members"]
        assert {p.email for p in demo.MEMBERS} <= set(members)
    finally:
        world.stop_standin(standin, tmp_path)

    # a restart: the same projects, a new port and new keys, the same cluster row
    again_standin = world.start_standin(tmp_path)
    try:
        assert again_standin.state.projects[project]["owner"] == demo.OWNER.email
        with fresh_db.transaction() as s:
            moved = world.register_standin(s, box, again_standin)
        assert moved.id == cluster.id and moved.api_url.rstrip("/") == again_standin.url
    finally:
        again_standin.close()
