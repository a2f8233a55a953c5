"""Revision 0025 moves what the outboxes still held into queued notice jobs, leaves what
was dispatched, and drops the outboxes; its downgrade recreates them empty."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect, text

from hopsplane.db import migrate
from tests.pg import PgServer


def test_pending_outbox_rows_become_queued_jobs_and_the_outboxes_go(pg: PgServer) -> None:
    url = pg.empty_database()
    migrate.upgrade(url, "0024")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO users (id, email) VALUES ('o', 'o@x.test'), "
                              "('m', 'm@x.test')"))
            conn.execute(text("UPDATE users SET account_owner_id = 'o' WHERE id = 'm'"))
            conn.execute(text(
                """
                INSERT INTO hopsplane.balance_events (account_owner_id, kind, threshold,
                    balance, ledger_seq, dispatched_at, amount, expires_at) VALUES
                  ('o', 'low_balance', 10.00, 7.00, 3, now(), NULL, NULL),
                  ('o', 'low_balance', 1.00, 0.50, 4, NULL, NULL, NULL),
                  ('o', 'suspended', NULL, -1.00, 5, NULL, NULL, NULL),
                  ('o', 'credits_expiring', NULL, 9.00, 2, NULL, 4.00,
                   '2026-12-14T10:00:00Z')
                """))
            conn.execute(text(
                """
                INSERT INTO hopsplane.member_budgets (member_id, account_owner_id,
                    monthly_budget, enforce) VALUES ('m', 'o', 10.00, true);
                INSERT INTO hopsplane.budget_notices (member_id, account_owner_id, month,
                    percent, budget, spend, recipient, dispatched_at) VALUES
                  ('m', 'o', '2026-12-01', 80, 10.00, 8.00, 'owner', now()),
                  ('m', 'o', '2026-12-01', 80, 10.00, 8.00, 'member', NULL)
                """))
        migrate.upgrade(url)
        migrate.check(url)
        with engine.begin() as conn:
            jobs = conn.execute(text(
                "SELECT task, idempotency_key, args FROM hopsplane.jobs ORDER BY id")).all()
            noticed = conn.execute(text(
                "SELECT noticed_month, noticed_budget, noticed_percent "
                "FROM hopsplane.member_budgets")).one()
        tables = set(inspect(engine).get_table_names(schema="hopsplane"))
        assert {"balance_events", "budget_notices"}.isdisjoint(tables)
        notices = [(j.args["kind"], j.args["payload"]) for j in jobs
                   if j.task == "notices.send"]
        assert notices == [
            ("low_balance", {"threshold": "1.00", "balance": "0.50", "ledger_seq": 4}),
            ("suspended", {"balance": "-1.00", "ledger_seq": 5}),
            ("credits_expiring", {"balance": "9.00", "ledger_seq": 2, "amount": "4.00",
                                  "expires_at": notices[2][1]["expires_at"]}),
            ("budget_reached", {"member_id": "m", "month": "2026-12-01", "percent": 80,
                                "budget": "10.00", "spend": "8.00", "enforce": True,
                                "recipients": ["member"]}),
        ]
        assert [j.args["kind"] for j in jobs if j.task == "credits.announce_standing"] == [
            "suspended"]
        assert [str(x) for x in noticed] == ["2026-12-01", "10.00", "80"]
        migrate.downgrade(url, "0024")
        with engine.begin() as conn:  # recreated empty: what was pending stays a job
            assert conn.execute(text(
                "SELECT count(*) FROM hopsplane.balance_events")).scalar_one() == 0
            assert conn.execute(text(
                "SELECT count(*) FROM hopsplane.budget_notices")).scalar_one() == 0
        migrate.upgrade(url)
        migrate.check(url)
    finally:
        engine.dispose()
