"""Bytes and values no honest client sends, where they used to be unhandled errors: a
non-ASCII byte in Stripe's signature header, in a console form's CSRF token, in the
sign-out form, in the sign-in callback's ``state``; a usage timestamp whose offset puts it
past the end of the calendar in UTC. Each is a 4xx in the error shape, never a 500."""

from __future__ import annotations

import pytest

from tests.apps import Api, signed_in


@pytest.mark.parametrize("signature", [
    b"t=1,v1=\xff\xfe", "t=1,v1=caf\u00e9".encode(), b"\xff", b"t=\xc3\xa9,v1=00",
])
def test_a_non_ascii_stripe_signature_is_401(web: Api, signature: bytes) -> None:
    answer = web.client.post("/v1/stripe/webhook", content=b'{"id": "evt_1"}',
                             headers={"Stripe-Signature": signature,
                                      "Content-Type": "application/json"})
    assert answer.status_code == 401, answer.text[:300]
    assert set(answer.json()) == {"error", "code", "detail"}


@pytest.mark.parametrize("token", ["caf\u00e9", "\u00ff" * 40, "\u2603", "x\x00y"])
def test_a_non_ascii_csrf_token_is_refused_not_500(web: Api, token: str) -> None:
    signed_in(web, "csrf@example.com")
    answer = web.client.post("/console/auto-topup/off", data={"csrf": token},
                             follow_redirects=False)
    assert 400 <= answer.status_code < 500, answer.text[:300]


@pytest.mark.parametrize("token", ["caf\u00e9", "\u2603"])
def test_a_non_ascii_logout_form_is_refused_not_500(web: Api, token: str) -> None:
    signed_in(web, "logout@example.com")
    answer = web.client.post("/auth/logout", data={"csrf": token}, follow_redirects=False)
    assert 400 <= answer.status_code < 500, answer.text[:300]


@pytest.mark.parametrize("state", ["caf\u00e9", "\u2603" * 10, "\u00ff"])
def test_a_non_ascii_callback_state_is_refused_not_500(web: Api, state: str) -> None:
    web.client.get("/auth/login", follow_redirects=False)  # a sign-in under way
    answer = web.client.get("/auth/callback", params={"code": "c", "state": state},
                            follow_redirects=False)
    assert 400 <= answer.status_code < 500, answer.text[:300]
