"""An owner joining a team while credit lands on their account: real threads, real
PostgreSQL. Whatever the interleaving, nobody ends up a member holding ledger entries."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.orm import Session

from hopsplane.credits import service as credits
from hopsplane.credits.rules import EntryType
from hopsplane.credits.schemas import Posting
from hopsplane.db.engine import Database
from hopsplane.errors import AppError
from hopsplane.integrations.email import LogMailer
from hopsplane.teams import service as teams
from tests.factories import RecordingHooks


def race_once(db: Database, ctx: teams.InviteContext) -> tuple[str, str]:
    owner, joiner = f"auth0|o{uuid.uuid4().hex[:8]}", f"auth0|j{uuid.uuid4().hex[:8]}"
    email = f"{joiner[6:]}@example.com"
    with db.transaction() as s:
        s.execute(text("INSERT INTO users (id, email) VALUES (:o, :oe), (:j, :je)"),
                  {"o": owner, "oe": f"{owner[6:]}@example.com", "j": joiner, "je": email})
        token = teams.create_invite(s, ctx, owner, email).token
    assert token is not None
    barrier = threading.Barrier(2)
    results: dict[str, str] = {}

    def attempt(name: str, work: Callable[[Session], object]) -> None:
        try:
            with db.transaction() as s:
                barrier.wait()
                work(s)
            results[name] = "ok"
        except AppError as exc:
            results[name] = exc.name

    threads = [
        threading.Thread(target=attempt, args=("join", lambda s: teams.accept_invite(
            s, RecordingHooks(), joiner, email, True, token))),
        threading.Thread(target=attempt, args=("grant", lambda s: credits.post(
            s, Posting(joiner, EntryType.GRANT, Decimal("5.00"), f"race-{uuid.uuid4().hex}")))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with db.transaction() as s:
        member = s.execute(text("SELECT account_owner_id IS NOT NULL FROM users WHERE id = :j"),
                           {"j": joiner}).scalar_one()
        entries = s.execute(text("SELECT count(*) FROM credits_ledger "
                                 "WHERE account_owner_id = :j"), {"j": joiner}).scalar_one()
    assert not (member and entries), results
    assert list(results.values()).count("ok") == 1, results
    return results["join"], results["grant"]


def test_joining_and_a_credit_grant_never_both_win(fresh_db: Database) -> None:
    ctx = teams.InviteContext(mailer=LogMailer(), public_url="http://c", default_expiry_days=7)
    outcomes = [race_once(fresh_db, ctx) for _ in range(10)]
    assert all(o in {("ok", "Invalid"), ("ok", "Conflict"), ("Conflict", "ok")} for o in outcomes)
