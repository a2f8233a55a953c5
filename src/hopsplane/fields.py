"""Input fields that PostgreSQL can always hold: the one place where strings and integers
from outside are checked against their columns.

Every pydantic input schema (API bodies, the CLI's and the console's inputs that go through
the same schemas) builds its fields from these, so a NUL character (which PostgreSQL text
cannot store), a string longer than its column or an integer outside its column type is a
422 from validation, never a database error: no route has to remember it.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, SecretStr, StringConstraints, ValidationInfo
from typing_extensions import TypeAliasType

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
def any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" for c in word)


# email-validator refuses addresses at special-use names (RFC 6761: .test, .local, ...)
# even without a DNS lookup; the pattern says so next to `format: email`.
SPECIAL_USE_DOMAINS = ("arpa", "invalid", "local", "localhost", "onion", "test")
EMAIL_PATTERN = (
    "^(?![\\s\\S]*[.@](?:" + "|".join(any_case(d) for d in SPECIAL_USE_DOMAINS)
    + ")\\s*$)[^\\u0000]*$"
)
EmailText = Annotated[
    str, StringConstraints(min_length=3, max_length=254), AfterValidator(no_nul),
    Field(json_schema_extra={"format": "email", "pattern": EMAIL_PATTERN}),
]
"""An email address as typed; ``accounts.rules.normalise_email`` checks and normalises it."""
PORT_PATTERN = (  # 0 to 65535
    "6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}|0"
)
HTTP_URL_PATTERN = (
    "^[ \\t]*https?://[A-Za-z0-9][A-Za-z0-9.-]*(?::(?:" + PORT_PATTERN + "))?"
    "(?:/[A-Za-z0-9._~%!$&'()*+,;=:@/-]*)?[ \\t]*$"
)
"""An http(s) URL of a host name (no credentials, query or fragment), as a cluster's
Hopsworks and Prometheus addresses are: checked by validation and stated in OpenAPI."""
_HTTP_URL = re.compile(HTTP_URL_PATTERN)


def http_url(value: str, info: ValidationInfo) -> str:
    if not _HTTP_URL.match(value):
        raise ValueError(f"{info.field_name} must be an http(s) URL of a host name (no "
                         f"credentials, query or fragment), got {value[:80]!r}")
    return value


HttpUrl = Annotated[str, StringConstraints(max_length=2048), AfterValidator(http_url),
                    Field(json_schema_extra={"pattern": HTTP_URL_PATTERN})]
NameText = Annotated[
    str, StringConstraints(min_length=1, max_length=200), AfterValidator(no_nul),
    Field(json_schema_extra={"pattern": "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"}),
]
"""A name: 1 to 200 characters, at least one of them not a space, no NUL."""
CursorText = Annotated[
    str, StringConstraints(min_length=1, max_length=600, pattern="^[A-Za-z0-9_-]+={0,2}$")
]
"""A page cursor as returned by a list: opaque to the caller, URL-safe base64 (what it
encodes, a position a list gave out, is beyond what OpenAPI can state)."""

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


NoNulText = Annotated[str, *_NO_NUL]
JsonDocument = TypeAliasType(
    "JsonDocument",
    "NoNulText | int | float | bool | list[JsonDocument] | dict[NoNulText, JsonDocument] | None",
)
"""Any JSON value whose strings (and keys) PostgreSQL's jsonb can hold: no NUL anywhere."""
