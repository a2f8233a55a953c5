"""Lazy draws (revision 0023): no account is left more than 256 entries behind, whichever
path posts; an account behind is drawn when its draws are needed."""

from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.orm import Session

from hopsplane.credits import repository as repo
from hopsplane.credits import service
from hopsplane.credits.rules import EntryType
from hopsplane.credits.schemas import Posting
from tests.factories import make_user, post


def _checkpoint(session: Session, acct: str) -> int:
    value = session.execute(text(
        "SELECT COALESCE((SELECT seq FROM hopsplane.credit_checkpoints "
        "WHERE account_owner_id = :a), 0)"), {"a": acct}).scalar_one()
    return int(value)


def test_the_batch_draws_an_account_whose_entries_reach_a_multiple_of_the_backlog(
    session: Session,
) -> None:
    acct = make_user(session)
    post(session, acct, "grant", "100.00")
    assert _checkpoint(session, acct) == 0  # a grant alone is not drawn yet
    usage = [Posting(acct, EntryType.USAGE, Decimal("-0.10"), f"u{i}") for i in range(300)]
    service.post_many(session, usage)
    assert _checkpoint(session, acct) == 301  # 256 was reached: drawn up to the head
    service.post_many(session, [Posting(acct, EntryType.USAGE, Decimal("-0.10"), f"v{i}")
                                for i in range(10)])
    assert _checkpoint(session, acct) == 301  # 302..311: still behind, by fewer than 256
    assert repo.DRAW_BACKLOG == 256


def test_single_postings_draw_at_the_multiple_and_what_needs_draws_catches_up(
    session: Session,
) -> None:
    acct = make_user(session)
    post(session, acct, "grant", "100.00")
    for i in range(254):
        post(session, acct, "usage", "-0.01", key=f"u{i}")
    assert _checkpoint(session, acct) == 0
    post(session, acct, "usage", "-0.01", key="u-last")  # entry 256
    assert _checkpoint(session, acct) == 256
    last = post(session, acct, "usage", "-0.01", key="u-more").entry
    assert _checkpoint(session, acct) == 256
    assert repo.draws_of(session, last.id)[0][2] == Decimal("0.01")  # drawn when read
    assert _checkpoint(session, acct) == 257
    assert service.verify(session, acct).ok
