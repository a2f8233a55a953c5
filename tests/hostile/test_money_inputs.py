"""Money inputs: every route that takes money refuses exponents, NaN, infinities,
floats, sub-cents and out-of-range amounts with a 4xx (never decimal.Overflow, never a 500),
and changes nothing. One parser (hopsplane.money.parse_amount) serves them all."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from hopsplane.cli.main import app as cli
from hopsplane.config import get_settings
from hopsplane.credits import service as credits
from tests.apps import Api, csrf_of
from tests.factories import post

HOSTILE = ["1e999999999", "1e1000000", "-1e999999999", "NaN", "-Infinity", "Infinity", "sNaN",
           "1E+2", "12.345", "1000000000000", "9" * 5000, "0x10", "1_000", "٣", 1.5, True,
           10**40]


def _ledger_rows(api: Api, owner: str) -> int:
    with api.db.transaction() as s:
        return int(s.execute(text("SELECT count(*) FROM credits_ledger WHERE account_owner_id "
                                  "= :o"), {"o": owner}).scalar_one())


def _admin_and_owner(api: Api) -> tuple[str, dict[str, str], dict[str, str], str]:
    owner, owner_headers = api.new_user()
    _, admin_headers = api.new_user(admin=True)
    with api.db.transaction() as s:
        purchase = str(post(s, owner, "purchase", "50.00").entry.id)
    return owner, owner_headers, admin_headers, purchase


@pytest.mark.parametrize("amount", HOSTILE)
def test_api_money_routes_refuse_hostile_amounts(web: Api, amount: object) -> None:
    owner, owner_headers, admin_headers, purchase = _admin_and_owner(web)
    before = _ledger_rows(web, owner)
    topup = web.client.post("/v1/account/topups", json={"amount": amount}, headers=owner_headers)
    grant = web.client.post(f"/v1/admin/accounts/{owner}/grants", headers=admin_headers,
                            json={"amount": amount, "reason": "r", "idempotency_key": "k"})
    refund = web.client.post(f"/v1/admin/accounts/{owner}/refunds", headers=admin_headers,
                             json={"purchase_id": purchase, "amount": amount, "reason": "r",
                                   "idempotency_key": "k"})
    for r in (topup, grant, refund):
        assert r.status_code == 422, (amount, r.status_code, r.text[:300])
        assert r.json()["error"] == "Invalid"
    assert _ledger_rows(web, owner) == before


@pytest.mark.parametrize("amount", [a for a in HOSTILE if isinstance(a, str)])
def test_console_money_forms_refuse_hostile_amounts(web: Api, amount: str) -> None:
    owner, owner_headers, admin_headers, _ = _admin_and_owner(web)
    token = csrf_of(web.client.get("/console", headers=owner_headers).text)
    topup = web.client.post("/console/topup", data={"csrf": token, "amount": amount},
                            headers=owner_headers, follow_redirects=False)
    page = web.client.get(f"/console/admin/accounts/{owner}", headers=admin_headers).text
    key = re.search(r'name="key" value="([0-9a-f]{32})"', page)
    assert key is not None
    grant = web.client.post(
        f"/console/admin/accounts/{owner}/grant", headers=admin_headers,
        data={"csrf": csrf_of(page), "key": key.group(1), "amount": amount, "reason": "r"})
    for r in (topup, grant):
        assert r.status_code == 422, (amount, r.status_code)
        assert 'role="alert"' in r.text
    assert _ledger_rows(web, owner) == 1


@pytest.mark.parametrize("amount", ["1e999999999", "NaN", "12.345", "1000000000000"])
def test_the_cli_refuses_hostile_amounts(
    web: Api, monkeypatch: pytest.MonkeyPatch, amount: str
) -> None:
    owner, _, _, purchase = _admin_and_owner(web)
    monkeypatch.setenv("HOPSPLANE_DATABASE_URL", web.db.url)
    monkeypatch.setenv("HOPSPLANE_ENVIRONMENT", "development")
    get_settings.cache_clear()
    runner = CliRunner()
    grant = runner.invoke(cli, ["credits", "grant", owner, amount, "-r", "x", "--key", "k"])
    refund = runner.invoke(cli, ["credits", "refund", owner, purchase, amount, "-r", "x"])
    for r in (grant, refund):
        assert r.exit_code == 1, r.output
        assert isinstance(r.exception, SystemExit), r.exception
    get_settings.cache_clear()
    with web.db.transaction() as s:
        assert credits.balance(s, owner) == Decimal("50.00")


def test_a_balance_at_its_limit_refuses_a_grant_with_422_and_keeps_it(web: Api) -> None:
    owner, _, admin_headers, _ = _admin_and_owner(web)  # holds a purchase of 50.00
    with web.db.transaction() as s:
        for i in range(99):
            post(s, owner, "grant", "999999999999.99", key=f"big{i}")
        post(s, owner, "grant", "999999999950.00", key="almost")
        top = credits.balance(s, owner)
    assert top == Decimal("99999999999999.01")
    r = web.client.post(f"/v1/admin/accounts/{owner}/grants", headers=admin_headers,
                        json={"amount": "1.00", "reason": "r", "idempotency_key": "over"})
    assert r.status_code == 422 and r.json()["error"] == "Invalid", r.text
    fits = web.client.post(f"/v1/admin/accounts/{owner}/grants", headers=admin_headers,
                           json={"amount": "0.98", "reason": "r", "idempotency_key": "fits"})
    assert fits.status_code == 201, fits.text
    with web.db.transaction() as s:
        assert credits.balance(s, owner) == Decimal("99999999999999.99")


@pytest.mark.parametrize("extra", [
    {"expires": "2027-01-01T00:00:00Z"},  # misspelt: was ignored, a permanent grant
    {"expiry": "2027-01-01"},
    {"expires_at": "2027-01-01"},  # no time zone
    {"expires_at": "next year"},
    {"expires_at": "1999-01-01T00:00:00Z"},  # in the past
])
def test_a_mistyped_expiry_on_a_grant_is_422_never_a_permanent_grant(
    web: Api, extra: dict[str, str]
) -> None:
    owner, _, admin_headers, _ = _admin_and_owner(web)
    before = _ledger_rows(web, owner)
    r = web.client.post(f"/v1/admin/accounts/{owner}/grants", headers=admin_headers,
                        json={"amount": "5.00", "reason": "promo", "idempotency_key": "g1",
                              **extra})
    assert r.status_code == 422 and r.json()["error"] == "Invalid", (extra, r.text[:300])
    assert _ledger_rows(web, owner) == before
    ok = web.client.post(f"/v1/admin/accounts/{owner}/grants", headers=admin_headers,
                         json={"amount": "5.00", "reason": "promo", "idempotency_key": "g1",
                               "expires_at": "2099-01-01T00:00:00Z"})
    assert ok.status_code == 422  # beyond ten years
    ok = web.client.post(f"/v1/admin/accounts/{owner}/grants", headers=admin_headers,
                         json={"amount": "5.00", "reason": "promo", "idempotency_key": "g2",
                               "expires_at": "2030-01-01T00:00:00Z"})
    assert ok.status_code == 201 and ok.json()["entry"]["expires_at"], ok.text
