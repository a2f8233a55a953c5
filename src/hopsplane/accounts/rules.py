"""Pure rules of accounts (no I/O)."""

from __future__ import annotations

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


def role_of(account_id: str | None, is_platform_admin: bool) -> Role:
    if is_platform_admin:
        return Role.ADMIN
    return Role.OWNER if account_id is None else Role.MEMBER


def normalise_email(value: str) -> str:
    """The one form of an address that is stored and compared.

    Only what makes two spellings the same mailbox is folded, never two mailboxes into one:

    - the domain is IDNA-normalised (UTS #46, non-transitional, as email-validator does:
      ``EXAMPLE.com``, its fullwidth spelling (U+FF25 ...) and ``example.com`` are one DNS
      name, and ``xn--strae-oqa.de`` is ``straße.de``), kept in Unicode and lower case.
      ``straße.de`` stays ``straße.de``: under IDNA2008 it is another domain than
      ``strasse.de`` (the transitional mapping ß -> ss is not applied);
    - the local part is lower-cased with the Unicode default case mapping (``str.lower``,
      which is JavaScript's ``toLowerCase``), because the identity provider does so: Auth0
      stores the address of a database-connection user "in lower case, regardless of how
      you initially provided it" (Management API, "Search Users by Email"), so
      ``Ann@x.io`` and ``ann@x.io`` are one Auth0 user and one invitee. Nothing more: no
      NFKC (a fullwidth U+FF41, the numeral U+216F stay themselves), no case folding
      (U+00DF sharp s is not ``ss``, final sigma U+03C2 is not U+03C3). Mail servers
      deliver those to other mailboxes.
    - the whole is trimmed, NFC (email-validator's canonical composition, which changes no
      mailbox) and valid by email-validator's rules (no DNS lookup), so markup such as
      ``"><script>@x.io`` is never stored. Invalid otherwise.
    """
    text = value.strip()
    if not text or len(text) > MAX_EMAIL:
        raise Invalid(f"{value[:80]!r} is not an email address")
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise Invalid(f"{value[:80]!r} is not an email address: {exc}") from exc
    email = f"{checked.local_part.lower()}@{checked.domain.lower()}"
    if len(email) > MAX_EMAIL:
        raise Invalid(f"{value[:80]!r} is not an email address: too long")
    return email
