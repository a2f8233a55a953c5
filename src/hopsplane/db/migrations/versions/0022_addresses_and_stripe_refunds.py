"""Email addresses compared as mail servers and the identity provider do; a refund Stripe
made may overdraw like a dispute.

- users.email and team_invites.email: checked under the address rule of
  ``hopsplane.accounts.rules.normalise_email``, copied here as it stands at this revision
  (domain IDNA-normalised and lower-cased, local part lower-cased as Auth0 does; no NFKC,
  no case folding). Two users whose addresses are one under this rule are a conflict only
  a person can resolve (both may hold credits): the upgrade refuses and names them. Rows
  whose stored form differs from the rule's are rewritten to it; pending invites that
  become duplicates (same account and address) keep the newest, the others are revoked.
  Addresses the older rule already folded (``ß`` to ``ss``, NFKC) cannot be unfolded:
  the person signs in by subject, and the next invite is compared under the new rule.
- credits_ledger: ``credits_ledger_only_usage_overdraws`` also lets a refund keyed
  ``stripe:refund:...`` (the cumulative refund Stripe reports for a payment) take the
  balance below zero. The money already went back to the customer: the ledger must record
  it whatever the balance, exactly like a dispute, and the posting's standing update
  suspends the account at or below zero. A refund made here (admin, operator) still may not.

Revision ID: 0022
Revises: 0020
Create Date: 2026-12-07
"""

import logging
from collections import defaultdict
from collections.abc import Sequence

from alembic import op
from email_validator import EmailNotValidError, validate_email

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

STRIPE_REFUNDS_UP = """
ALTER TABLE public.credits_ledger DROP CONSTRAINT credits_ledger_only_usage_overdraws;
ALTER TABLE public.credits_ledger ADD CONSTRAINT credits_ledger_only_usage_overdraws
  CHECK (type IN ('usage', 'dispute', 'expiry')
         OR (type = 'refund' AND idempotency_key LIKE 'stripe:refund:%')
         OR amount > 0 OR balance >= 0);
"""

STRIPE_REFUNDS_DOWN = """
ALTER TABLE public.credits_ledger DROP CONSTRAINT credits_ledger_only_usage_overdraws;
ALTER TABLE public.credits_ledger ADD CONSTRAINT credits_ledger_only_usage_overdraws
  CHECK (type IN ('usage', 'dispute', 'expiry') OR amount > 0 OR balance >= 0);
"""


MAX_EMAIL = 254


def _normalised(value: str) -> str | None:
    """The stored form of an address, or None when it is not a valid one: the rule of
    ``hopsplane.accounts.rules.normalise_email`` at this revision (trimmed, valid by
    email-validator without a DNS lookup, domain IDNA-normalised, domain and local part
    lower case, at most 254 characters), frozen here because a revision must not change its
    effect when the application's rule changes later."""
    text = value.strip()
    if not text or len(text) > MAX_EMAIL:
        return None
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        return None
    email = f"{checked.local_part.lower()}@{checked.domain.lower()}"
    return email if len(email) <= MAX_EMAIL else None


def _check_users() -> None:
    bind = op.get_bind()
    rows = bind.exec_driver_sql("SELECT id, email FROM public.users ORDER BY id").all()
    by_address: dict[str, list[tuple[str, str]]] = defaultdict(list)
    changes: list[dict[str, str]] = []
    for user_id, email in rows:
        address = _normalised(email) or email  # an invalid stored address stays as it is
        by_address[address].append((user_id, email))
        if address != email:
            changes.append({"id": user_id, "email": address})
    conflicts = [found for found in by_address.values() if len(found) > 1]
    if conflicts:
        listed = "; ".join(
            " and ".join(f"{user_id} ({email})" for user_id, email in found)
            for found in conflicts[:20]
        )
        raise RuntimeError(
            f"refusing to upgrade to 0022: {len(conflicts)} group(s) of users have one email "
            f"address under the address rule (domain IDNA and lower case, local part lower "
            f"case): {listed}. Merge them or change their addresses (users.email), then "
            "upgrade again."
        )
    # conflicts were refused above, so no row's new address is another row's current one
    for change in changes:
        bind.exec_driver_sql(
            "UPDATE public.users SET email = %(email)s WHERE id = %(id)s", change
        )


def _check_invites() -> None:
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
        if live and address is not None:
            seen.add((owner, address))
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
        log.warning("0022: revoked %d pending invite(s) that duplicated another under the "
                    "address rule or had no valid address", len(revoke))


def upgrade() -> None:
    _check_users()
    _check_invites()
    op.execute(STRIPE_REFUNDS_UP)


def downgrade() -> None:
    overdrawn = op.get_bind().exec_driver_sql(
        "SELECT count(*) FROM public.credits_ledger WHERE type = 'refund' AND balance < 0"
    ).scalar()
    if overdrawn:
        raise RuntimeError(
            f"refusing to downgrade below 0022: {overdrawn} Stripe refund(s) took a balance "
            "below zero, which the older rule refuses"
        )
    op.execute(STRIPE_REFUNDS_DOWN)
    # Addresses under the newer rule are valid under the older one: nothing to undo.
