"""Pure rules of accounts and teams (no database)."""

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from hopsplane.accounts.rules import Role, normalise_email, role_of
from hopsplane.errors import Invalid
from hopsplane.http.session_cookie import CookieSigner
from hopsplane.integrations.auth0.oauth import code_challenge, new_code_verifier
from hopsplane.teams.rules import (
    accept_link,
    blockers,
    expiry,
    hash_token,
    new_token,
    plausible_token,
)


def test_invite_tokens_carry_256_bits_and_differ() -> None:
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    raw = base64.urlsafe_b64decode(next(iter(tokens)) + "=")
    assert len(raw) * 8 >= 256
    assert all(plausible_token(t) for t in tokens)


def test_only_a_sha256_hex_is_stored() -> None:
    assert hash_token("abc") == hashlib.sha256(b"abc").hexdigest()
    assert len(hash_token(new_token())) == 64


def test_expiry_between_one_and_thirty_days() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert expiry(now, 7) == now + timedelta(days=7)
    for bad in (0, 31, -1):
        with pytest.raises(Invalid):
            expiry(now, bad)


def test_blockers_say_why() -> None:
    assert blockers(members=0, ledger_entries=0, usage_days=0) == []
    assert blockers(members=2, ledger_entries=1, usage_days=3) == [
        "you have 2 team members", "your account has credits history",
        "your account has recorded usage"]


def test_accept_link_points_at_the_console() -> None:
    assert accept_link("https://app.example/", "t") == "https://app.example/console/invites/accept?token=t"


def test_roles_and_emails() -> None:
    assert role_of(None, False) is Role.OWNER
    assert role_of("o", False) is Role.MEMBER
    assert role_of("o", True) is Role.ADMIN
    assert normalise_email("  Ann@Example.COM ") == "ann@example.com"
    for bad in ("ann", "ann@", "a b@c.d", "@x.io", "a@b"):
        with pytest.raises(Invalid):
            normalise_email(bad)


def test_pkce_challenge_is_rfc7636_s256() -> None:
    # RFC 7636 appendix B
    assert code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == (
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
    assert 43 <= len(new_code_verifier()) <= 128


def test_cookies_are_signed_per_purpose_and_expire() -> None:
    keys = ["k" * 40]
    session, login = CookieSigner(keys, "session", 60), CookieSigner(keys, "login", 60)
    value = session.dumps({"sub": "a"})
    assert session.loads(value) == {"sub": "a"}
    assert login.loads(value) is None  # a login cookie cannot pass for a session
    assert CookieSigner(["other" * 8], "session", 60).loads(value) is None
    assert CookieSigner(keys, "session", -1).loads(value) is None  # too old
    for junk in (None, "", "a.b.c", "x" * 5000, "abc.def"):
        assert session.loads(junk) is None


def test_the_first_key_signs_and_every_key_verifies() -> None:
    old, new = "o" * 40, "n" * 40
    by_old = CookieSigner([old], "session", 60).dumps({"s": 1})
    rotated = CookieSigner([new, old], "session", 60)
    assert rotated.loads(by_old) == {"s": 1}  # rotation signs nobody out
    by_new = rotated.dumps({"s": 2})
    assert CookieSigner([new], "session", 60).loads(by_new) == {"s": 2}
    assert CookieSigner([old], "session", 60).loads(by_new) is None
