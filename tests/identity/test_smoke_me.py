from tests.identity.conftest import Api


def test_first_request_creates_an_owner(api: Api) -> None:
    uid, headers = api.new_user()
    me = api.client.get("/v1/me", headers=headers).json()
    assert me["id"] == uid and me["role"] == "owner" and me["account_id"] == uid
    assert me["email_verified"] is True
    assert api.hooks.events == [("account_created", uid)]
