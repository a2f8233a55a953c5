"""The per-process cache of verified access tokens keeps a token only until its exp."""

import base64
import json
import time

from hopsplane.http.identity import VerifiedTokens
from hopsplane.integrations.auth0 import Identity


def _token(exp: float | None) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    claims: dict[str, object] = {"sub": "u"} if exp is None else {"sub": "u", "exp": exp}
    return f"{part({'alg': 'RS256'})}.{part(claims)}.sig"


def test_a_verified_token_is_known_until_it_expires() -> None:
    cache = VerifiedTokens()
    who = Identity("u", "u@x.io", True)
    fresh, stale = _token(time.time() + 60), _token(time.time() - 1)
    assert cache.get(fresh) is None
    cache.put(fresh, who)
    cache.put(stale, who)
    assert cache.get(fresh) == who
    assert cache.get(stale) is None  # expired: verified again (and refused) next time
    assert cache.get(fresh + "x") is None  # another string is another token


def test_a_token_without_exp_is_not_kept_and_the_cache_is_bounded() -> None:
    cache = VerifiedTokens(size=2)
    who = Identity("u", None, False)
    cache.put(_token(None), who)
    assert cache.get(_token(None)) is None
    tokens = [_token(time.time() + 60 + i) for i in range(3)]
    for t in tokens:
        cache.put(t, who)
    assert cache.get(tokens[2]) == who and len(cache._known) <= 2
