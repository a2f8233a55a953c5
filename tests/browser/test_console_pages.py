"""Every console page in Chromium at a phone's width (390 px) and a laptop's (1280 px): no
page-level horizontal scrolling, no serious or critical accessibility violation (axe-core,
shipped inside axe-playwright-python, so it runs offline), a usage chart whose bars add up
to the table beneath it, a CSV export equal to the API's numbers, /docs rendered without a
CDN, and an organization created by the owner and used by a delegated admin."""

from __future__ import annotations

import csv
import io
import re
import shutil
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from hopsplane.billing.rules import usage_description
from hopsplane.credits import service as credits
from hopsplane.credits.origins import AdminGrant
from hopsplane.credits.rules import EntryType
from hopsplane.db.engine import Database
from tests.apps import CHROMIUM, Served, browser_or_skip
from tests.factories import post, upsert_usage

pytestmark = pytest.mark.slow  # a real browser walking every page


WIDTHS = (390, 1280)


def sign_in(page: Any, base: str, email: str, path: str = "/console") -> None:
    page.goto(base + path)  # signed out: straight to the issuer's page, then back
    page.fill("input[name=login_hint]", email)
    page.click("button")
    page.wait_for_url(base + path)


def user_id(db: Database, email: str) -> str:
    with db.transaction() as s:
        return str(s.execute(text("SELECT id FROM users WHERE email = :e"),
                             {"e": email}).scalar_one())


ID_PATTERNS = re.compile(
    r"[a-z0-9-]+\|[0-9a-f]{6,}|\(by cli\)|\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
    r"[0-9a-f]{12}\b|\bpi_[A-Za-z0-9]+|\bgrant: ")
"""What a customer must never read: an identity provider's user id (``dev|0f6c…``), the
operators' jargon, a UUID, a Stripe object id, the ledger's stored prefixes."""

CLIPPED = """() => [...document.querySelectorAll(
  'main td, main th, main button, main input, main select, main label, main a')].filter(e => {
    const r = e.getBoundingClientRect();
    if (!r.width || e.closest('thead, .visually-hidden')) return false;
    return r.right > document.documentElement.clientWidth + 1 || e.scrollWidth > e.clientWidth + 1
      && getComputedStyle(e).overflow !== 'visible';
  }).map(e => e.tagName + ':' + (e.innerText || e.value || '').slice(0, 40))"""
"""Cells, buttons and fields that run past the window or cut their text (``$20.`` for
``$20.00``) at the width of the viewport."""

SMALL_CHART_TEXT = """() => [...document.querySelectorAll('svg text')].filter(t => {
    const r = t.getBoundingClientRect();
    return r.height > 0 && r.height < 9;
  }).length"""
"""Chart labels drawn smaller than about 9 px high on screen (the 800-wide chart squeezed
to a phone drew them at 5 px)."""


def check_page(page: Any, axe: Any, url: str, customer: bool = True) -> None:
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(url)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{url} scrolls sideways by {overflow}px at {width}px"
        clipped = page.evaluate(CLIPPED)
        assert not clipped, f"{url} at {width}px cuts {clipped}"
        assert page.evaluate(SMALL_CHART_TEXT) == 0, f"{url} at {width}px: tiny chart text"
        if customer:
            found = ID_PATTERNS.findall(page.inner_text("body"))
            assert not found, f"{url} at {width}px shows ids or jargon: {found}"
        results = axe.run(page)
        bad = [(v["id"], v["impact"], v["help"]) for v in results.response["violations"]
               if v["impact"] in ("serious", "critical")]
        assert not bad, f"{url} at {width}px: {bad}"


def test_every_page_at_both_widths_with_chart_csv_and_organizations(fresh_db: Database) -> None:
    browser_or_skip()
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import sync_playwright

    axe = Axe()
    today = date.today()
    with Served(fresh_db) as served, sync_playwright() as p:
        base = served.base
        browser = p.chromium.launch(executable_path=shutil.which("chromium") or CHROMIUM,
                                    args=["--no-sandbox"])
        try:
            owner_ctx = browser.new_context(bypass_csp=False)
            page = owner_ctx.new_page()
            sign_in(page, base, "zoe@example.com")
            member_ctx = browser.new_context()
            member_page = member_ctx.new_page()
            sign_in(member_page, base, "yan@example.com")
            zoe, yan = user_id(fresh_db, "zoe@example.com"), user_id(fresh_db, "yan@example.com")
            with fresh_db.transaction() as s:
                s.execute(text("UPDATE users SET account_owner_id = :o, name = 'Yan Li' "
                               "WHERE id = :m"), {"o": zoe, "m": yan})
                credits.grant(s, zoe, "120.00", reason="welcome", origin=AdminGrant("w"),
                              granted_by="dev|0f6cb0123456")
                post(s, zoe, EntryType.USAGE, "-1.20", description=usage_description(
                    today - timedelta(days=1), Decimal(12000), Decimal("1.20"), Decimal(0)))
                for n in range(1, 15):
                    upsert_usage(s, zoe, today - timedelta(days=n), str(1000 * n + 0.5),
                                 {zoe: str(400 * n), yan: str(600 * n + 0.5)})

            # the grant an admin made and a day of usage read in plain words
            page.goto(base + "/console/ledger")
            ledger_text = page.inner_text("main")
            assert "Credit granted by Support: welcome" in ledger_text
            assert "CPU-hours, $" in ledger_text and "Compute on " in ledger_text

            # the owner's pages, including an error page, the usage page and /docs
            first, last = today - timedelta(days=29), today
            usage_url = f"{base}/console/usage?from={first}&to={last}"
            for path in ("/console", "/console/ledger", "/console/team", "/console/auto-topup",
                         "/console/organizations", "/console/no-such-page"):
                check_page(page, axe, base + path)
            assert page.title().startswith("Page not found")
            check_page(page, axe, usage_url)

            # the chart adds up to the table, day by day and in all
            bars = page.eval_on_selector_all(
                "#usage-chart g.bar", "els => els.map(e => [e.dataset.day, e.dataset.total])")
            rows = page.eval_on_selector_all(
                "#usage-table tbody tr", "els => els.map(e => [e.dataset.day, e.dataset.cost])")
            assert len(bars) == 14 and bars == rows
            total = Decimal(page.get_attribute("#total-cost", "data-amount") or "")
            assert sum(Decimal(t) for _, t in bars) == total > 0
            assert "Yan Li (yan@example.com)" in page.inner_text(".legend")
            assert yan not in page.content()  # names and emails, never ids

            # a bad date is refused on the page itself
            page.goto(f"{base}/console/usage?from=2026-02-30&to={last}")
            assert "YYYY-MM-DD" in page.inner_text("[role=alert]")

            # the CSV the page links to has the API's numbers
            page.goto(usage_url)
            with page.expect_download() as download:
                page.click("text=Download as CSV")
            exported = list(csv.DictReader(io.StringIO(
                Path(download.value.path()).read_text(encoding="utf-8"))))
            api = page.request.get(f"{base}/v1/account/usage?from={first}&to={last}").json()
            by_day: dict[str, tuple[Decimal, Decimal]] = {}  # a row per day and member
            for r in exported:
                cost, used = by_day.get(r["date"], (Decimal(0), Decimal(0)))
                by_day[r["date"]] = (cost + Decimal(r["cost"]), used + Decimal(r["compute_units"]))
            assert sorted(by_day.items()) == [(d["date"], (Decimal(d["total_cost"]),
                                               Decimal(d["compute_units"]))) for d in api["days"]]
            assert {r["member"] for r in exported} == {"zoe@example.com",
                                                       "Yan Li (yan@example.com)"}

            # a member sees only their own share, and no owner pages
            member_page.goto(usage_url)
            member_total = Decimal(member_page.get_attribute("#total-cost", "data-amount") or "")
            assert Decimal(0) < member_total < total
            assert "/console/ledger" not in member_page.inner_text("header")

            # the owner creates an organization and makes Yan its admin
            page.goto(base + "/console/organizations")
            page.fill("input[name=name]", "Research")
            page.click("text=Create organization")
            page.wait_for_url(re.compile(r".*/console/organizations/[0-9a-f-]+$"))
            org_url = page.url
            page.fill("input[name=email]", "yan@example.com")
            page.select_option("select[name=role]", "admin")
            page.click("text=Add or change role")
            page.wait_for_url(org_url + "?notice=saved")
            assert "admin" in page.inner_text("#org-people")
            check_page(page, axe, org_url)

            # Yan, now an admin, has the team and the ledger, and the whole account's usage
            check_page(member_page, axe, base + "/console/team")
            assert "zoe@example.com" in member_page.inner_text("#members")
            member_page.goto(usage_url)
            assert Decimal(member_page.get_attribute("#total-cost", "data-amount") or "") \
                == total
            check_page(member_page, axe, org_url)
            assert "Usage of the last 30 days" in member_page.inner_text("main")

            # a platform admin's pages fit both widths too (ids are theirs to see)
            with fresh_db.transaction() as s:
                s.execute(text("UPDATE users SET is_platform_admin = true WHERE id = :o"),
                          {"o": zoe})
            for path in ("/console/admin", f"/console/admin/accounts/{zoe}"):
                check_page(page, axe, base + path, customer=False)

            # /docs renders from this server alone
            page.goto(base + "/docs")
            page.wait_for_selector(".swagger-ui .info .title")
            assert "hopsplane" in page.inner_text(".swagger-ui .info .title")

            # sign out: a page that says so, at both widths
            page.goto(base + "/console")
            page.click("text=Sign out")
            page.wait_for_url(base + "/console/signed-out")
            check_page(page, axe, base + "/console/signed-out")
        finally:
            browser.close()
