"""The production verifier against the local issuer's real JWKS endpoint (HTTP)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from hopsplane.errors import Unauthorized, Unavailable
from hopsplane.integrations.auth0 import JwksCache, LocalIssuer, TokenVerifier

NS = "https://hopsplane.io/"


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    i = LocalIssuer(claims_namespace=NS)
    yield i
    i.stop()


def verifier(issuer: LocalIssuer, *, min_refresh: float = 60, clock: object = None) -> TokenVerifier:
    kwargs = {"clock": clock} if clock else {}
    jwks = JwksCache(issuer.jwks_url, min_refresh_seconds=min_refresh, **kwargs)  # type: ignore[arg-type]
    return TokenVerifier(issuer.issuer, issuer.audience, jwks, claims_namespace=NS,
                         leeway_seconds=30)


def test_a_valid_token_names_the_user_and_the_namespaced_email_claims(issuer: LocalIssuer) -> None:
    token = issuer.issue("auth0|abc", email="Ann@Example.com", email_verified=True, name="Ann")
    identity = verifier(issuer).verify(token)
    assert identity.sub == "auth0|abc"
    assert identity.email == "Ann@Example.com" and identity.email_verified is True
    assert identity.name == "Ann"


def test_email_verified_is_false_unless_the_claim_is_exactly_true(issuer: LocalIssuer) -> None:
    v = verifier(issuer)
    assert v.verify(issuer.issue("a", email="a@b.io", email_verified=False)).email_verified is False
    assert v.verify(issuer.issue("a")).email_verified is False
    odd = issuer.issue("a", extra={NS + "email": "a@b.io", NS + "email_verified": "true"})
    assert v.verify(odd).email_verified is False


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        (lambda: {"audience": "https://other-api/"}, "not meant for this API"),
        (lambda: {"issuer": "https://evil.example/"}, "another issuer"),
        (lambda: {"expires_in": -120}, "expired"),
        # built when the test runs, not when it is collected: a long suite would otherwise
        # reach the "future" not-before and see the token accepted
        (lambda: {"not_before": time.time() + 600}, "not valid yet"),
    ],
)
def test_wrong_claims_are_refused(
    issuer: LocalIssuer, claims: Callable[[], dict[str, object]], message: str
) -> None:
    with pytest.raises(Unauthorized, match=message):
        verifier(issuer).verify(issuer.issue("a", **claims()))  # type: ignore[arg-type]


def test_the_issuer_must_match_with_its_trailing_slash(issuer: LocalIssuer) -> None:
    token = issuer.issue("a", issuer=issuer.issuer.rstrip("/"))
    with pytest.raises(Unauthorized, match="another issuer"):
        verifier(issuer).verify(token)


def test_small_clock_skew_is_tolerated(issuer: LocalIssuer) -> None:
    assert verifier(issuer).verify(issuer.issue("a", expires_in=-10)).sub == "a"
    assert verifier(issuer).verify(issuer.issue("a", not_before=time.time() + 10)).sub == "a"


def test_an_audience_list_containing_ours_is_accepted(issuer: LocalIssuer) -> None:
    token = issuer.issue("a", audience=["https://x/", issuer.audience])
    assert verifier(issuer).verify(token).sub == "a"


def test_only_rs256_is_accepted(issuer: LocalIssuer) -> None:
    claims = {"sub": "a", "iss": issuer.issuer, "aud": issuer.audience, "exp": time.time() + 60}
    hs = jwt.encode(claims, "secret-secret-secret-secret-32b!", algorithm="HS256",
                    headers={"kid": issuer.current_kid})
    with pytest.raises(Unauthorized, match="only RS256"):
        verifier(issuer).verify(hs)
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": issuer.current_kid})
    with pytest.raises(Unauthorized, match="only RS256"):
        verifier(issuer).verify(unsigned)


def test_a_forged_signature_under_a_known_kid_is_refused(issuer: LocalIssuer) -> None:
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = issuer.issue("admin", key=forger)
    with pytest.raises(Unauthorized, match="invalid"):
        verifier(issuer).verify(token)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "x" * 5000])
def test_garbage_is_unauthorized(issuer: LocalIssuer, token: str) -> None:
    with pytest.raises(Unauthorized):
        verifier(issuer).verify(token)


def test_required_claims_are_required(issuer: LocalIssuer) -> None:
    key_token = issuer.issue("a")
    claims = jwt.decode(key_token, options={"verify_signature": False})
    del claims["exp"]
    token = jwt.encode(claims, issuer._keys[issuer.current_kid], algorithm="RS256",
                       headers={"kid": issuer.current_kid})
    with pytest.raises(Unauthorized, match="exp"):
        verifier(issuer).verify(token)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_unknown_kid_refreshes_the_keys_but_not_more_often_than_allowed() -> None:
    issuer = LocalIssuer(claims_namespace=NS)
    try:
        clock = FakeClock()
        v = verifier(issuer, min_refresh=60, clock=clock)
        assert v.verify(issuer.issue("a")).sub == "a"
        assert issuer.jwks_requests == 1
        v.verify(issuer.issue("a"))
        assert issuer.jwks_requests == 1  # cached

        issuer.rotate_key()  # the tenant rotates its signing key
        clock.now += 5
        with pytest.raises(Unauthorized, match="does not know"):
            v.verify(issuer.issue("a"))  # too soon after the last fetch: no refetch
        assert issuer.jwks_requests == 1
        for _ in range(5):  # a flood of unknown kids does not hammer the endpoint
            with pytest.raises(Unauthorized):
                v.verify(issuer.issue("a", kid="nope"))
        assert issuer.jwks_requests == 1

        clock.now += 60
        assert v.verify(issuer.issue("a")).sub == "a"  # refreshed on the unknown kid
        assert issuer.jwks_requests == 2
    finally:
        issuer.stop()


def test_the_key_set_is_refetched_when_it_is_stale() -> None:
    issuer = LocalIssuer(claims_namespace=NS)
    try:
        clock = FakeClock()
        jwks = JwksCache(issuer.jwks_url, min_refresh_seconds=60, max_age_seconds=3600,
                         clock=clock)
        jwks.key(issuer.current_kid)
        clock.now += 3601
        jwks.key(issuer.current_kid)
        assert issuer.jwks_requests == 2
    finally:
        issuer.stop()


def test_an_unreachable_jwks_is_unavailable_not_a_crash() -> None:
    issuer = LocalIssuer(claims_namespace=NS)
    token = issuer.issue("a")
    url = issuer.jwks_url
    issuer.stop()
    v = TokenVerifier(url.split(".well-known")[0], issuer.audience, JwksCache(url, timeout=2),
                      claims_namespace=NS)
    with pytest.raises(Unavailable, match="signing keys"):
        v.verify(token)
