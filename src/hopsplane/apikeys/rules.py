"""The shape of an API key, with no I/O.

``hpk_live_`` + 32 base62 characters of randomness (190 bits) + 6 base62 characters of the
CRC32 of the randomness, like GitHub's tokens: the fixed prefix lets secret scanners find a
leaked key, and the checksum lets them (and us, before any database read) tell a key from
a random string of the same shape.

Stored as SHA-256 of the whole key, never the key: with 190 random bits no preimage can be
guessed, so a slow password hash (made to stretch low-entropy secrets) would buy nothing
and cost CPU on every request."""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib
from enum import StrEnum

PREFIX = "hpk_live_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_RANDOM_CHARS = 32
_CHECK_CHARS = 6
SHAPE = re.compile(rf"^{PREFIX}[0-9A-Za-z]{{{_RANDOM_CHARS + _CHECK_CHARS}}}$")
DISPLAY_CHARS = len(PREFIX) + 4
"""How much of a key is kept readable (`hpk_live_AbCd…`) so that owners tell keys apart."""

MAX_LIFETIME_DAYS = 366


class Scope(StrEnum):
    BALANCE_READ = "balance:read"
    USAGE_READ = "usage:read"
    LEDGER_READ = "ledger:read"
    TEAM_READ = "team:read"
    WEBHOOKS_MANAGE = "webhooks:manage"


def _base62(number: int, width: int) -> str:
    out = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        out.append(_ALPHABET[digit])
    return "".join(reversed(out))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECK_CHARS)


def new_key() -> str:
    body = "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_CHARS))
    return PREFIX + body + _checksum(body)


def looks_like_key(token: str) -> bool:
    """Whether a bearer token claims to be an API key (the prefix): then it is judged as
    one, and never sent to the identity provider."""
    return token.startswith("hpk_")


def well_formed(token: str) -> bool:
    """The prefix, the length, the alphabet and the checksum."""
    if not SHAPE.match(token):
        return False
    body = token[len(PREFIX):len(PREFIX) + _RANDOM_CHARS]
    return token[-_CHECK_CHARS:] == _checksum(body)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def display_prefix(token: str) -> str:
    return token[:DISPLAY_CHARS]
