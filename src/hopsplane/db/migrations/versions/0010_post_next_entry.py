"""One round trip per posting: hopsplane.post_next_entry.

The single posting of credits.service.post used to be two statements from the client:
the owner check with the account's advisory lock, then the INSERT ... SELECT that chains
the entry after the account's head. This function runs the same two steps on the server,
in that order and in the caller's transaction: under READ COMMITTED every statement of a
PL/pgSQL function takes a fresh snapshot, so the head is read after the lock is held,
exactly as before. Nothing about the ledger's guarantees changes (they are the table's
constraints); the client saves a statement's round trip and the CPU to send it.

It never raises for an unknown account or a team member (the caller turns those into its
own errors, and may keep using the transaction): it reports them in its OUT columns and
writes nothing. For a known idempotency key it writes nothing and returns no entry.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = r"""
CREATE FUNCTION hopsplane.post_next_entry(
    p_account text, p_amount numeric, p_type text, p_description text,
    p_payment_intent text, p_key text, p_refund_of uuid,
    OUT account_found boolean, OUT member_of text,
    OUT entry_id uuid, OUT entry_seq bigint, OUT entry_amount numeric, OUT entry_balance numeric,
    OUT entry_created_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    SELECT true, u.account_owner_id INTO account_found, member_of
    FROM public.users AS u WHERE u.id = p_account;
    IF account_found IS NULL THEN
        account_found := false;
        RETURN;
    END IF;
    IF member_of IS NOT NULL THEN
        RETURN;  -- a team member: entries belong to the owner
    END IF;
    -- the same lock as the client-side path and the set-based one (credits.repository)
    PERFORM pg_advisory_xact_lock(hashtextextended('credits_ledger:' || p_account, 0));
    INSERT INTO public.credits_ledger AS l (
        account_owner_id, seq, prev_seq, prev_balance, amount, balance, type,
        description, stripe_payment_intent_id, idempotency_key, refund_of)
    SELECT p_account, COALESCE(h.seq, 0) + 1, h.seq, h.balance, p_amount,
           COALESCE(h.balance, 0) + p_amount, p_type, p_description,
           p_payment_intent, p_key, p_refund_of
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL (
        SELECT c.seq, c.balance FROM public.credits_ledger AS c
        WHERE c.account_owner_id = p_account ORDER BY c.seq DESC LIMIT 1
    ) AS h ON true
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING l.id, l.seq, l.amount, l.balance, l.created_at
    INTO entry_id, entry_seq, entry_amount, entry_balance, entry_created_at;
END
$$;
"""

DOWNGRADE = r"""
DROP FUNCTION hopsplane.post_next_entry(text, numeric, text, text, text, text, uuid);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
