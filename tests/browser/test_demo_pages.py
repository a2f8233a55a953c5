"""Every console page of `hopsplane dev --demo` in Chromium, at 1280 px and 390 px, as the
owner, an organization admin, a member and a platform admin see it with a month of data:
no page scrolls sideways, no figure of a table is cut by its box, no serious or critical
accessibility violation (axe-core, offline). The walk is the one `hopsplane dev
screenshots` takes, so the pictures a reviewer gets are of the pages checked here."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from hopsplane.devworld import screenshots
from tests.apps import browser_or_skip

pytestmark = pytest.mark.slow  # a whole world and a real browser

CUT_FIGURES = """() => {
  // no cell's text is cut inside its cell; and an amount (money, or a quantity with
  // decimals) is whole where it is shown: not clipped by a box that hides or scrolls its
  // overflow, nor by the window (a date or an id may scroll out of sight, a figure not)
  const clipped = (el) => {
    const r = el.getBoundingClientRect();
    if (r.right > document.documentElement.clientWidth + 1 || r.left < -1) return true;
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      if (getComputedStyle(a).overflowX === 'visible') continue;
      const box = a.getBoundingClientRect();
      if (r.right > box.right + 1 || r.left < box.left - 1) return true;
    }
    return false;
  };
  const amount = /[$€£]|[0-9][.][0-9]{2}(?![0-9])/;
  return [...document.querySelectorAll('td, th')]
    .filter(c => c.offsetParent !== null && c.innerText.trim())
    .filter(c => c.scrollWidth > c.clientWidth + 1 || (amount.test(c.innerText) && clipped(c)))
    .map(c => c.innerText.trim()).slice(0, 5);
}"""


def test_every_demo_page_at_both_widths(tmp_path: Path) -> None:
    browser_or_skip()
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    seen: list[tuple[str, int]] = []
    problems: list[str] = []  # every page's, so that one run lists them all

    def check(page: Any, url: str, width: int) -> None:
        seen.append((url, width))
        path = url.split("/", 3)[-1]
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth")
        if overflow > 0:
            problems.append(f"/{path} at {width}px scrolls sideways by {overflow}px")
        cut = page.evaluate(CUT_FIGURES)
        if cut:
            problems.append(f"/{path} at {width}px cuts figures: {cut}")
        bad = [(v["id"], v["impact"], v["help"]) for v in axe.run(page).response["violations"]
               if v["impact"] in ("serious", "critical")]
        if bad:
            problems.append(f"/{path} at {width}px: {bad}")

    env = {k: v for k, v in os.environ.items() if not k.startswith("HOPSPLANE_")}
    env["HOPSPLANE_DATA_DIR"] = str(tmp_path / "data")
    out = tmp_path / "shots"
    out.mkdir()
    with screenshots.demo_world(env, log=tmp_path / "dev.log") as base:
        written = screenshots.walk(base, screenshots.chromium_path(), out=out, check=check)
    pages = len(screenshots.VISITS)
    assert len(seen) == len(written) == pages * len(screenshots.WIDTHS)
    assert {w for _, w in seen} == {390, 1280}
    assert problems == [], "\n".join(problems)
    assert all(p.stat().st_size > 0 for p in written)
