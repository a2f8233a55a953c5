"""The console's auto top-up page: terms reviewed before consent, the card saved through
Stripe Checkout (setup mode), turning off; the admin's account page shows the state."""

from __future__ import annotations

import re

from sqlalchemy import text

from tests.apps import Api, csrf_of


def test_the_owner_reviews_the_terms_saves_a_card_and_turns_it_off(web: Api) -> None:
    owner, headers = web.new_user()
    page = web.client.get("/console/auto-topup", headers=headers)
    assert page.status_code == 200 and "Off" in page.text
    token = csrf_of(page.text)
    review = web.client.post("/console/auto-topup/review", headers=headers, data={
        "csrf": token, "threshold": "20", "amount": "50"})
    assert review.status_code == 200, review.text
    terms = re.search(r"<blockquote>(.*?)</blockquote>", review.text, re.S)
    assert terms and "50.00 USD" in terms.group(1)
    refused = web.client.post("/console/auto-topup", headers=headers, data={
        "csrf": token, "threshold": "20.00", "amount": "50.00"})
    assert refused.status_code == 422 and 'role="alert"' in refused.text
    saved = web.client.post("/console/auto-topup", headers=headers, follow_redirects=False,
                            data={"csrf": token, "threshold": "20.00", "amount": "50.00",
                                  "accept_terms": "yes"})
    assert saved.status_code == 303
    with web.db.transaction() as s:
        stored = s.execute(text("SELECT terms, given_by FROM hopsplane.auto_topup_consents "
                                "WHERE account_owner_id = :a"), {"a": owner}).one()
    # the consent holds exactly the words the review page showed
    assert stored.terms == terms.group(1).replace("&#39;", "'") and stored.given_by == owner
    card = web.client.post("/console/auto-topup/card", headers=headers,
                           follow_redirects=False, data={"csrf": token})
    assert card.status_code == 303 and card.headers["location"].startswith(
        "https://checkout.stripe.test/")
    off = web.client.post("/console/auto-topup/off", headers=headers, follow_redirects=False,
                          data={"csrf": token})
    assert off.status_code == 303
    assert "Off" in web.client.get("/console/auto-topup", headers=headers).text
    _, admin_headers = web.new_user(admin=True)
    shown = web.client.get(f"/console/admin/accounts/{owner}", headers=admin_headers)
    assert shown.status_code == 200 and 'id="auto-topup-status">off' in shown.text
    assert web.client.get(f"/v1/admin/users/{owner}/auto-topup",
                          headers=admin_headers).json()["consent"]["revoked_at"]
