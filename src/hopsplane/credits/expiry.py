"""Use cases of promotional credit that expires. Functions take the session
first and never commit.

A grant with ``expires_at`` is promotional: usage draws it before anything that expires
later or never (``hopsplane.burn_down`` records the draws, revision 0023; the accounts
concerned are caught up before what is left of a grant is read). At its expiry
:func:`expire_due` posts one ``expiry`` entry for what is left of it, keyed by the grant
(``expiry:<grant id>``), so a repeated or concurrent run posts it once. Seven days before,
:func:`notify_expiring` publishes one ``credits_expiring`` event per grant (its notice is a
queued job, keyed by the grant: once, like a low-balance notice).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from hopsplane.credits import repository as repo
from hopsplane.credits.origins import GrantExpiry
from hopsplane.credits.rules import DEFAULT_THRESHOLDS, EXPIRY_NOTICE, EntryType
from hopsplane.credits.schemas import Posting, PostResult
from hopsplane.credits.service import ledger_key, post
from hopsplane.hooks import AccountHooks

EXPIRE_BATCH = 500


def expire_due(
    session: Session,
    *,
    now: datetime | None = None,
    hooks: AccountHooks | None = None,
    thresholds: tuple[Decimal, ...] = DEFAULT_THRESHOLDS,
    limit: int = EXPIRE_BATCH,
) -> list[PostResult]:
    """Post the expiry of every grant past its expiry with something left (at most
    ``limit`` of them; the next run takes the rest). ``now`` defaults to the transaction's
    time; the expiry entries carry it."""
    at = now or repo.db_now(session)
    repo.catch_up_grants(session, at, limit)
    posted = []
    for grant_id, account in repo.grants_due(session, at, limit):
        result = expire_grant(session, account, grant_id, now=at, hooks=hooks,
                              thresholds=thresholds)
        if result is not None:
            posted.append(result)
    return posted


def expire_grant(
    session: Session,
    account_owner_id: str,
    grant_id: uuid.UUID,
    *,
    now: datetime,
    hooks: AccountHooks | None = None,
    thresholds: tuple[Decimal, ...] = DEFAULT_THRESHOLDS,
) -> PostResult | None:
    """Remove what is left of one expired grant, under the account's lock (so usage posted
    at the same time either drew from the grant before, or finds it expired). None when
    nothing is left (already expired, or all of it used)."""
    repo.owner_and_lock(session, account_owner_id)
    left = repo.open_part(session, grant_id)
    if left <= 0:
        return None
    return post(
        session,
        Posting(
            account_owner_id,
            EntryType.EXPIRY,
            -left,
            ledger_key(GrantExpiry(str(grant_id))),
            description=f"expiry of what was left of grant {grant_id}",
            refers_to=grant_id,
            at=now,
        ),
        hooks=hooks,
        thresholds=thresholds,
    )


def notify_expiring(
    session: Session, *, now: datetime | None = None, within: timedelta = EXPIRY_NOTICE
) -> int:
    """Publish a ``credits_expiring`` notice for each grant that expires within ``within``
    with something left, once per grant; returns how many were new."""
    at = now or repo.db_now(session)
    repo.catch_up_grants(session, at + within, EXPIRE_BATCH, since=at)
    return repo.record_expiring(session, at, at + within)
