"""SQL of the ledger, one module per job. The only package that reads or writes
credits_ledger and the credits tables; ``from hopsplane.credits import repository`` keeps
working: every function is re-exported here.

- :mod:`.postings`: appending (one posting, its hot path, many at once), owner checks, locks
- :mod:`.standing`: suspended or not, the announced low-balance level
- :mod:`.reads`: entries, balances, history, the chain check
- :mod:`.lots`: the draw-down (lots, draws, checkpoints), expiring grants
- :mod:`.connection`: the psycopg connection under a session
"""

from __future__ import annotations

from hopsplane.credits.repository.lots import (
    accounts_behind,
    catch_up,
    catch_up_grants,
    db_now,
    draw_breaks,
    draws_of,
    grants_due,
    open_part,
    promotional,
    record_expiring,
)
from hopsplane.credits.repository.postings import (
    DRAW_BACKLOG,
    account_owner_of,
    entry_by_key_now,
    insert_many,
    lock_accounts,
    owner_and_lock,
    owners_among,
    post_next,
    post_now,
)
from hopsplane.credits.repository.reads import (
    balance,
    chain_breaks,
    entry_count,
    find_by_id,
    find_by_key,
    find_by_keys,
    find_purchase_by_payment_intent,
    ledger_size,
    list_entries,
    refunded_so_far,
    stripe_purchases,
)
from hopsplane.credits.repository.standing import (
    accounts_at_or_below,
    apply_standing,
    standing,
    standing_of,
)

__all__ = [
    "DRAW_BACKLOG",
    "account_owner_of",
    "accounts_at_or_below",
    "accounts_behind",
    "apply_standing",
    "balance",
    "catch_up",
    "catch_up_grants",
    "chain_breaks",
    "db_now",
    "draw_breaks",
    "draws_of",
    "entry_by_key_now",
    "entry_count",
    "find_by_id",
    "find_by_key",
    "find_by_keys",
    "find_purchase_by_payment_intent",
    "grants_due",
    "insert_many",
    "ledger_size",
    "list_entries",
    "lock_accounts",
    "open_part",
    "owner_and_lock",
    "owners_among",
    "post_next",
    "post_now",
    "promotional",
    "record_expiring",
    "refunded_so_far",
    "standing",
    "standing_of",
    "stripe_purchases",
]
