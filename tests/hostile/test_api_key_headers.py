"""Hostile API keys: whatever a client puts after `Bearer hpk_`, the answer is a 401 in the
error shape (never a 500, never the key echoed), and a key never stands in for a person."""

from __future__ import annotations

import pytest

from hopsplane.apikeys import rules
from tests.apps import Api

KEY = rules.new_key()

HOSTILE = [
    "hpk_live_" + "A" * 10_000,  # oversize
    "hpk_live_" + "é" * 38,  # non-ASCII where base62 belongs
    "hpk_live_" + "0" * 37 + "\t",
    KEY.upper() if KEY.upper() != KEY else KEY.lower(),  # case changed: another key
    KEY[:-6] + "%00%00%00",
    "hpk_test_" + KEY[len("hpk_live_"):],  # another prefix
    "hpk_live_' OR '1'='1" + "0" * 20,
    KEY + " " + KEY,
]


@pytest.mark.parametrize("token", HOSTILE, ids=range(len(HOSTILE)))
def test_a_hostile_key_is_401_with_the_error_shape(api: Api, token: str) -> None:
    r = api.client.get("/v1/account/balance",
                       headers={"Authorization": f"Bearer {token}".encode()})  # type: ignore[dict-item]
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "Unauthorized" and token not in r.text


def test_lowercase_scheme_and_spaces_are_read_as_bearer(api: Api) -> None:
    _owner, oh = api.new_user()
    made = api.client.post("/v1/account/api-keys", headers=oh,
                           json={"name": "x", "scopes": ["balance:read"]}).json()
    for header in (f"bearer {made['secret']}", f"Bearer   {made['secret']}  "):
        r = api.client.get("/v1/account/balance", headers={"Authorization": header})
        assert r.status_code == 200, (header, r.text)
    # a key is not a person's token: it cannot accept an invite or sign in to the console
    r = api.client.post("/v1/invites/accept", json={"token": "t" * 43},
                        headers={"Authorization": f"Bearer {made['secret']}"})
    assert r.status_code == 403 and r.json()["error"] == "Forbidden"
