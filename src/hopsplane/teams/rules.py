"""Pure rules of teams (no I/O)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from hopsplane.errors import Invalid

TOKEN_BYTES = 32  # 256 bits from the OS's CSPRNG
MAX_EXPIRY_DAYS = 30
MAX_PROJECT_ID = 2_147_483_647  # users.hopsworks_project_id is an INTEGER


def new_token() -> str:
    """An invite token: 256 random bits, URL-safe (43 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """What is stored: the SHA-256 of the token, hex (the database checks the shape)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def expiry(now: datetime, days: int) -> datetime:
    if not 1 <= days <= MAX_EXPIRY_DAYS:
        raise Invalid(f"an invite expires after 1 to {MAX_EXPIRY_DAYS} days, not {days}")
    return now + timedelta(days=days)


def plausible_token(token: str) -> bool:
    """Tokens we issue are 43 URL-safe characters; anything far off is not worth a lookup."""
    return 16 <= len(token) <= 256 and token.isascii() and token.isprintable()


def accept_link(public_url: str, token: str) -> str:
    """The console page that accepts an invite (signing the invitee in first)."""
    return f"{public_url.rstrip('/')}/console/invites/accept?token={token}"


def blockers(*, members: int, ledger_entries: int, usage_days: int) -> list[str]:
    """Why an owner may not become somebody's member (empty: nothing blocks)."""
    reasons = []
    if members:
        reasons.append(f"you have {members} team member{'s' if members != 1 else ''}")
    if ledger_entries:
        reasons.append("your account has credits history")
    if usage_days:
        reasons.append("your account has recorded usage")
    return reasons
