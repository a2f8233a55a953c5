"""The team page's budgets: the owner sets, sees and removes a member's
monthly budget; a bad amount is refused on the page and changes nothing."""

from __future__ import annotations

from datetime import date

from tests.apps import Api, csrf_of
from tests.factories import make_user, upsert_usage


def test_the_owner_sets_sees_and_removes_a_budget_on_the_team_page(api: Api) -> None:
    owner, headers = api.new_user()
    with api.db.transaction() as s:
        m = make_user(s, owner=owner)
        upsert_usage(s, owner, date.today().replace(day=1), "12345", {m: "12345"})
    page = api.client.get("/console/team", headers=headers)
    assert page.status_code == 200 and 'id="budgets"' in page.text
    token = csrf_of(page.text)

    bad = api.client.post("/console/team/budgets", headers=headers, data={
        "csrf": token, "member_id": m, "monthly_budget": "-3"})
    assert bad.status_code == 422 and 'role="alert"' in bad.text
    assert api.client.get("/v1/account/budgets", headers=headers).json() == []

    saved = api.client.post("/console/team/budgets", headers=headers, follow_redirects=False,
                            data={"csrf": token, "member_id": m, "monthly_budget": "2.00",
                                  "enforce": "on"})
    assert saved.status_code == 303
    [b] = api.client.get("/v1/account/budgets", headers=headers).json()
    assert (b["monthly_budget"], b["enforce"], b["spent"], b["percent"]) == (
        "2.00", True, "1.23", 61)
    shown = api.client.get("/console/team?notice=budget-saved", headers=headers).text
    assert 'value="2.00"' in shown and "(61%)" in shown and "checked" in shown

    removed = api.client.post("/console/team/budgets", headers=headers, follow_redirects=False,
                              data={"csrf": token, "member_id": m, "monthly_budget": ""})
    assert removed.status_code == 303
    assert api.client.get("/v1/account/budgets", headers=headers).json() == []
