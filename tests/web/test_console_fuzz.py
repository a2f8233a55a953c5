"""Whatever a browser (or someone typing URLs) sends to the console, the answer is a page
with a status below 500: random query strings and form fields, as owner and as admin."""

from __future__ import annotations

from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.apps import Api, csrf_of

PAGES = {  # path: the fields it reads (each one present or absent, with any value)
    "GET /console": ["notice"],
    "GET /console/ledger": ["cursor"],
    "GET /console/usage": ["from", "to"],
    "GET /console/team": ["notice"],
    "GET /console/invites/accept": ["token"],
    "GET /console/admin": [],
    "GET /console/admin/find": ["q"],
    "POST /console/team/invites": ["email"],
    "POST /console/topup": ["amount"],
    "POST /console/invites/accept": ["token"],
    "POST /console/admin/accounts/{account}/grant": ["amount", "reason", "key"],
}

values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "0", "-1", "1e400", "9" * 30, "2026-02-30", "0001-01-01",
                     "9999-12-31", "NaN", "12.345", "../x", "a@b", "<script>"]),
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
    page = draw(st.sampled_from(sorted(PAGES)))
    fields = {f: draw(values) for f in PAGES[page] if draw(st.booleans())}
    return page, fields


def test_random_queries_and_forms_never_break_a_page(web: Api) -> None:
    owner, owner_headers = web.new_user()
    _, admin_headers = web.new_user(admin=True)
    tokens = {
        "owner": csrf_of(web.client.get("/console/team", headers=owner_headers).text),
        "admin": csrf_of(web.client.get("/console/admin", headers=admin_headers).text),
    }
    callers = {"owner": owner_headers, "admin": admin_headers}

    @settings(max_examples=200, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(who=st.sampled_from(["owner", "admin"]), request=requests())
    def one(who: str, request: tuple[str, dict[str, str]]) -> None:
        page, fields = request
        method, path = page.split(" ")
        url = path.replace("{account}", owner)
        if method == "POST":
            r = web.client.post(url, content=urlencode({**fields, "csrf": tokens[who]}),
                                headers={**callers[who], "Content-Type":
                                         "application/x-www-form-urlencoded"},
                                follow_redirects=False)
        else:
            r = web.client.get(url + "?" + urlencode(fields), headers=callers[who],
                               follow_redirects=False)
        assert r.status_code < 500, (who, url, fields, r.text[:300])
        if r.status_code >= 400:
            assert 'role="alert"' in r.text, (who, url, fields, r.text[:300])

    one()
