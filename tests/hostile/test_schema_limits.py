"""Column limits, beyond usage: a NUL character, a string longer than its column or an
integer outside its column type is a 422 from the schemas (hopsplane.fields), on every
route that takes one, and changes nothing."""

from __future__ import annotations

import pytest

from tests.apps import Api

NUL = "a\x00b"


@pytest.mark.parametrize(("method", "path", "body"), [
    ("post", "/v1/team/invites", {"email": f"{NUL}@example.com"}),
    ("post", "/v1/team/invites", {"email": "x" * 250 + "@e.io"}),
    ("post", "/v1/invites/accept", {"token": NUL * 20}),
    ("post", "/v1/invites/accept", {"token": "t" * 513}),
    ("put", "/v1/team/members/{me}/project", {"hopsworks_project_id": 2**31}),
    ("put", "/v1/team/members/a%00b/project", {"hopsworks_project_id": 1}),
    ("delete", "/v1/team/members/a%00b", None),
    ("get", "/v1/team/members?cursor=a%00b", None),
    ("get", "/v1/account/ledger?cursor=a%00b", None),
    ("get", "/v1/admin/accounts/a%00b/balance", None),
    ("get", "/v1/admin/users?cursor=a%00b", None),
    ("get", "/v1/admin/clusters?cursor=a%00b", None),
    ("post", "/v1/admin/clusters", {"name": NUL, "api_url": "https://h.io", "api_key": "k"}),
    ("post", "/v1/admin/clusters", {"name": "n", "api_url": f"https://h.io/{NUL}",
                                    "api_key": "k"}),
    ("post", "/v1/admin/accounts/{me}/grants", {"amount": "1", "reason": NUL,
                                                "idempotency_key": "k"}),
    ("post", "/v1/admin/accounts/{me}/grants", {"amount": "1", "reason": "r",
                                                "idempotency_key": NUL}),
    ("get", "/v1/admin/usage/unmatched?cursor=a%00b", None),
])
def test_nul_oversize_and_out_of_range_inputs_are_422(
    api: Api, method: str, path: str, body: object
) -> None:
    me, headers = api.new_user(admin=True)
    url = path.replace("{me}", me)
    kwargs = {"json": body} if body is not None else {}
    r = api.client.request(method.upper(), url, headers=headers, **kwargs)  # type: ignore[arg-type]
    assert r.status_code == 422, (path, r.status_code, r.text[:300])
    assert r.json()["error"] == "Invalid"
