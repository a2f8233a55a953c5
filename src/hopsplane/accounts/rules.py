"""Pure rules of accounts (no I/O)."""

from __future__ import annotations

import unicodedata
from enum import StrEnum

from email_validator import EmailNotValidError, validate_email

from hopsplane.errors import Invalid

LOGIN_TOUCH_SECONDS = 60
"""``last_login_at`` is written at most once a minute per user."""

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
    """The one form of an address that is stored and compared: Unicode NFKC, trimmed and
    case-folded (U+216F ROMAN NUMERAL ONE THOUSAND + "2@X.io" and "m2@x.io" are one
    address), and a valid address by email-validator's rules (the package pydantic uses;
    no DNS lookup). Invalid otherwise, so markup such as ``"><script>@x.io`` is never
    stored."""
    text = unicodedata.normalize("NFKC", value).strip().casefold()
    if not text or len(text) > MAX_EMAIL:
        raise Invalid(f"{value[:80]!r} is not an email address")
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise Invalid(f"{value[:80]!r} is not an email address: {exc}") from exc
    email = unicodedata.normalize("NFKC", checked.normalized).casefold()
    if len(email) > MAX_EMAIL:
        raise Invalid(f"{value[:80]!r} is not an email address: too long")
    return email
