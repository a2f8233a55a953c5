"""Input fields that PostgreSQL can always hold: the one place where strings and integers
from outside are checked against their columns.

Every pydantic input schema (API bodies, the CLI's and the console's inputs that go through
the same schemas) builds its fields from these, so a NUL character (which PostgreSQL text
cannot store), a string longer than its column or an integer outside its column type is a
422 from validation, never a database error: no route has to remember it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, SecretStr, StringConstraints

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1  # INTEGER
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # BIGINT
ID_LENGTH = 255  # user ids (Auth0 subjects), event ids, idempotency keys
NO_NUL_PATTERN = "^[^\\u0000]*$"


def no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


_NO_NUL = (AfterValidator(no_nul), Field(json_schema_extra={"pattern": NO_NUL_PATTERN}))

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=ID_LENGTH), *_NO_NUL]
"""A user id, event id, idempotency key or Stripe id: 1 to 255 characters, no NUL."""
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200), *_NO_NUL]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=500), *_NO_NUL]
Token = Annotated[str, StringConstraints(min_length=1, max_length=512), *_NO_NUL]
Url = Annotated[str, StringConstraints(max_length=2048), *_NO_NUL]
EmailText = Annotated[str, StringConstraints(min_length=3, max_length=254), *_NO_NUL]
"""An email address as typed; ``accounts.rules.normalise_email`` checks and normalises it."""
CursorText = Annotated[str, StringConstraints(min_length=1, max_length=600), *_NO_NUL]
"""A page cursor as returned by a list (opaque to the caller)."""

Int32 = Annotated[int, Field(ge=INT32_MIN, le=INT32_MAX)]
PositiveInt32 = Annotated[int, Field(ge=1, le=INT32_MAX)]


SECRET_MAX_LENGTH = 1024
PASTE_SPACE = " \t\r\n"
"""What a paste may put around a key (dropped); inside one, nothing but visible ASCII."""


def is_header_safe(text: str) -> bool:
    """Visible ASCII only (0x21-0x7E): a value that can go in an HTTP header as it is."""
    return 1 <= len(text) <= SECRET_MAX_LENGTH and all("\x21" <= c <= "\x7e" for c in text)


def header_safe_secret(value: SecretStr) -> SecretStr:
    """A key that is sent in an HTTP header (``Authorization: ApiKey <key>``): visible
    ASCII only. A NUL, CR/LF, space or non-ASCII character would be stored and then break
    every call made with it (or split the header). Surrounding spaces (a paste) are
    dropped. The message never repeats the value."""
    text = value.get_secret_value().strip(PASTE_SPACE)
    if not 1 <= len(text) <= SECRET_MAX_LENGTH:
        raise ValueError(f"must be 1 to {SECRET_MAX_LENGTH} characters")
    if not is_header_safe(text):
        raise ValueError("must be visible ASCII characters only (no spaces, line breaks, "
                         "control or non-ASCII characters): paste the key exactly as issued")
    return SecretStr(text)


HeaderSafeSecret = Annotated[SecretStr, AfterValidator(header_safe_secret),
                             Field(json_schema_extra={
                                 "pattern": "^[ \\t\\r\\n]*[\\x21-\\x7e]{1,1024}[ \\t\\r\\n]*$"})]
"""A secret sent as (part of) an HTTP header: a cluster's API keys."""
