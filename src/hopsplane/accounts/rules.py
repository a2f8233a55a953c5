"""Pure rules of accounts (no I/O)."""

from __future__ import annotations

import re
from enum import StrEnum

from hopsplane.errors import Invalid

LOGIN_TOUCH_SECONDS = 60
"""``last_login_at`` is written at most once a minute per user."""

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_EMAIL = 254


class Role(StrEnum):
    ADMIN = "admin"
    OWNER = "owner"
    MEMBER = "member"


def role_of(account_owner_id: str | None, is_platform_admin: bool) -> Role:
    if is_platform_admin:
        return Role.ADMIN
    return Role.OWNER if account_owner_id is None else Role.MEMBER


def normalise_email(value: str) -> str:
    """Trimmed and lower-cased; Invalid unless it looks like an address."""
    email = value.strip().lower()
    if len(email) > MAX_EMAIL or not _EMAIL.match(email):
        raise Invalid(f"{value!r} is not an email address")
    return email
