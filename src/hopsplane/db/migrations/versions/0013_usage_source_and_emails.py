"""Usage event ids are scoped to their source; email addresses are stored normalised.

- hopsplane.usage_events: the primary key becomes (source, event_id). An id is the
  sender's: the same id from two clusters (or from a cluster and the admin API) is two
  events, both billed; a repeat from the same source is still ignored. Existing rows keep
  their source and id (ids were unique over all sources, so they are unique per source).
  The partial index of unmatched events follows the new order (their page order).
- users.email and team_invites.email: normalised (Unicode NFKC, trimmed, case-folded,
  and a valid address by email-validator's rules: the rule of
  hopsplane.accounts.rules.normalise_email as it stood at this revision, copied below so
  that replaying the revision does what it did then, whatever the rule becomes). Two
  users whose addresses become one are a conflict only a person can resolve (both may
  hold credits): the upgrade refuses and names them. Pending invites that become
  duplicates (same account and address) keep the newest; the others, and pending
  invites to addresses that are not valid, are revoked. A user whose stored address is
  not valid keeps it (sign-in goes by subject) and is reported.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

import logging
import unicodedata
from collections import defaultdict
from collections.abc import Sequence

from alembic import op
from email_validator import EmailNotValidError, validate_email

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

USAGE_UP = """
ALTER TABLE hopsplane.usage_events DROP CONSTRAINT usage_events_pkey;
ALTER TABLE hopsplane.usage_events ADD CONSTRAINT usage_events_pkey
  PRIMARY KEY (source, event_id);
DROP INDEX hopsplane.usage_events_unmatched_idx;
CREATE INDEX usage_events_unmatched_idx ON hopsplane.usage_events (source, event_id)
  WHERE status = 'unmatched';
"""

USAGE_DOWN = """
ALTER TABLE hopsplane.usage_events DROP CONSTRAINT usage_events_pkey;
ALTER TABLE hopsplane.usage_events ADD CONSTRAINT usage_events_pkey PRIMARY KEY (event_id);
DROP INDEX hopsplane.usage_events_unmatched_idx;
CREATE INDEX usage_events_unmatched_idx ON hopsplane.usage_events (event_id)
  WHERE status = 'unmatched';
"""


MAX_EMAIL = 254


def _normalised(value: str) -> str | None:
    """The stored form of an address, or None when it is not a valid one: the application's
    rule at this revision (NFKC, trimmed, case-folded, valid by email-validator without a
    DNS lookup, at most 254 characters), frozen here because a revision must not change
    its effect when the application's rule changes later."""
    text = unicodedata.normalize("NFKC", value).strip().casefold()
    if not text or len(text) > MAX_EMAIL:
        return None
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        return None
    email = unicodedata.normalize("NFKC", checked.normalized).casefold()
    return email if len(email) <= MAX_EMAIL else None


def _normalise_users() -> None:
    bind = op.get_bind()
    rows = bind.exec_driver_sql("SELECT id, email FROM public.users ORDER BY id").all()
    by_address: dict[str, list[str]] = defaultdict(list)
    changes: list[dict[str, str]] = []
    invalid: list[str] = []
    for user_id, email in rows:
        address = _normalised(email)
        if address is None:
            invalid.append(user_id)
            address = email
        by_address[address].append(user_id)
        if address != email:
            changes.append({"id": user_id, "email": address})
    conflicts = [ids for ids in by_address.values() if len(ids) > 1]
    if conflicts:
        listed = "; ".join(" and ".join(ids) for ids in conflicts[:20])
        raise RuntimeError(
            f"refusing to upgrade to 0013: {len(conflicts)} group(s) of users have the same "
            f"email address once normalised (NFKC, trimmed, case-folded): {listed}. Merge or "
            "change their addresses (users.email), then upgrade again."
        )
    if invalid:
        log.warning("0013: %d user(s) keep an email that is not a valid address: %s",
                    len(invalid), ", ".join(invalid[:20]))
    # One pass is enough: normalising is idempotent and conflicts were refused above, so
    # no row's new address can be another row's current one.
    for change in changes:
        bind.exec_driver_sql(
            "UPDATE public.users SET email = %(email)s WHERE id = %(id)s", change
        )


def _normalise_invites() -> None:
    bind = op.get_bind()
    rows = bind.exec_driver_sql(
        "SELECT id, account_owner_id, email, accepted_at IS NULL AND revoked_at IS NULL "
        "FROM public.team_invites ORDER BY created_at DESC, id"
    ).all()
    seen: set[tuple[str, str]] = set()
    revoke: list[str] = []
    changes: list[dict[str, str]] = []
    for invite_id, owner, email, live in rows:
        address = _normalised(email)
        if live and (address is None or (owner, address) in seen):
            revoke.append(str(invite_id))
            continue
        if live:
            seen.add((owner, address))  # type: ignore[arg-type]
        if address is not None and address != email:
            changes.append({"id": str(invite_id), "email": address})
    for invite_id in revoke:  # first, so that the one-live-per-email index never objects
        bind.exec_driver_sql(
            "UPDATE public.team_invites SET revoked_at = now() WHERE id = %(id)s::uuid",
            {"id": invite_id},
        )
    for change in changes:
        bind.exec_driver_sql(
            "UPDATE public.team_invites SET email = %(email)s WHERE id = %(id)s::uuid", change
        )
    if revoke:
        log.warning("0013: revoked %d pending invite(s) that duplicated another once "
                    "normalised or had no valid address", len(revoke))


def upgrade() -> None:
    op.execute(USAGE_UP)
    _normalise_users()
    _normalise_invites()


def downgrade() -> None:
    shared = op.get_bind().exec_driver_sql(
        "SELECT count(*) FROM (SELECT event_id FROM hopsplane.usage_events GROUP BY event_id "
        "HAVING count(*) > 1) d"
    ).scalar()
    if shared:
        raise RuntimeError(
            f"refusing to downgrade below 0013: {shared} usage event id(s) are used by several "
            "sources, which the older key (event_id alone) cannot hold"
        )
    op.execute(USAGE_DOWN)
    # Normalised addresses are valid under the older rules: nothing to undo.
