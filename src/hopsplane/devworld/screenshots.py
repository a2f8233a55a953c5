"""Every console page of the demo world in Chromium, at a laptop's width and a phone's, as
PNGs for a reviewer (`hopsplane dev screenshots`) and as the walk the browser test checks.

Each person of the demo signs in through the development issuer's page in a browser
context of their own (the owner, an organization admin, a member, a platform admin), then
the walk visits that person's pages at each width. Playwright is a test dependency, not a
runtime one: it is imported only here, when asked for."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hopsplane.devworld import demo

WIDTHS = (1280, 390)
HEIGHT = 900
READY_SECONDS = 180


@dataclass(frozen=True)
class Visit:
    """A page as one person sees it. ``path`` may name ``{org}`` (the demo organization)
    or ``{account}`` (the demo account, for the platform admin)."""

    who: str  # an email of the demo; "" signed out
    role: str
    path: str
    name: str


VISITS = (
    Visit(demo.OWNER.email, "owner", "/console", "home"),
    Visit(demo.OWNER.email, "owner", "/console/usage", "usage"),
    Visit(demo.OWNER.email, "owner", "/console/ledger", "ledger"),
    Visit(demo.OWNER.email, "owner", "/console/team", "team"),
    Visit(demo.OWNER.email, "owner", "/console/auto-topup", "auto-topup"),
    Visit(demo.OWNER.email, "owner", "/console/organizations", "organizations"),
    Visit(demo.OWNER.email, "owner", "/console/organizations/{org}", "organization"),
    Visit(demo.MEMBERS[0].email, "org-admin", "/console", "home"),
    Visit(demo.MEMBERS[0].email, "org-admin", "/console/team", "team"),
    Visit(demo.MEMBERS[0].email, "org-admin", "/console/usage", "usage"),
    Visit(demo.MEMBERS[0].email, "org-admin", "/console/organizations/{org}", "organization"),
    Visit(demo.MEMBERS[1].email, "member", "/console", "home"),
    Visit(demo.MEMBERS[1].email, "member", "/console/usage", "usage"),
    Visit(demo.OPERATOR.email, "admin", "/console/admin", "admin"),
    Visit(demo.OPERATOR.email, "admin", "/console/admin/accounts/{account}", "admin-account"),
    Visit("", "signed-out", "/console/signed-out", "signed-out"),
)

class WalkFailed(Exception):
    """A page the walk needed did not come (a world without the demo, a browser error)."""


Check = Callable[[Any, str, int], None]
"""Called on every page at every width (page, url, width), after it has loaded."""


def missing(chromium: Path) -> str | None:
    """What is missing for a walk, as a message that says what to install; None if
    nothing is."""
    problems = []
    if not chromium.exists():
        problems.append(f"no Chromium at {chromium} (apt-get install chromium, or --chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        problems.append("no Playwright (pip install -e '.[test]')")
    return "; ".join(problems) or None


def not_a_demo_world(base: str) -> str | None:
    """Why ``base`` is not a running `hopsplane dev --demo` to walk; None when it is one."""
    import httpx

    try:
        r = httpx.get(f"{base}/readyz", timeout=5)
    except httpx.HTTPError as exc:
        return f"nothing answers at {base} ({exc}): start `hopsplane dev --demo` there first"
    if r.status_code != 200:
        return f"{base}/readyz answers {r.status_code}: is it a running `hopsplane dev --demo`?"
    return None


def walk(base: str, chromium: Path, *, out: Path | None = None,
         check: Check | None = None) -> list[Path]:
    """Visit every page of :data:`VISITS` at every width of :data:`WIDTHS` on the demo
    world at ``base``; write ``<role>-<name>-<width>.png`` into ``out`` when given, and
    call ``check`` on each page. Returns the files written; :class:`WalkFailed` when a
    page does not come (what ``check`` raises goes through as it is)."""
    from playwright.sync_api import Error

    try:
        return _walk(base, chromium, out, check)
    except Error as exc:
        raise WalkFailed(f"the browser could not walk {base}: "
                         f"{str(exc).splitlines()[0]}") from exc


def _walk(base: str, chromium: Path, out: Path | None, check: Check | None) -> list[Path]:
    from playwright.sync_api import sync_playwright

    written: list[Path] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        try:
            pages: dict[str, Any] = {}
            found: dict[str, str] = {}
            for visit in VISITS:
                page = pages.get(visit.who)
                if page is None:
                    page = pages[visit.who] = browser.new_context().new_page()
                    if visit.who:
                        sign_in(page, base, visit.who)
                path = visit.path.format(**_placeholders(page, base, visit, found))
                for width in WIDTHS:
                    page.set_viewport_size({"width": width, "height": HEIGHT})
                    response = page.goto(base + path)
                    if response is None or not response.ok:
                        raise WalkFailed(f"{path} as {visit.role} answered "
                                           f"{response.status if response else 'nothing'}")
                    if check is not None:
                        check(page, base + path, width)
                    if out is not None:
                        target = out / f"{visit.role}-{visit.name}-{width}.png"
                        page.screenshot(path=str(target), full_page=True)
                        written.append(target)
        finally:
            browser.close()
    return written


def sign_in(page: Any, base: str, email: str) -> None:
    """The development issuer's page: an email, no password, back to the console."""
    page.goto(base + "/console")
    page.fill("input[name=login_hint]", email)
    page.click("button")
    page.wait_for_url(base + "/console")


def _placeholders(page: Any, base: str, visit: Visit, found: dict[str, str]) -> dict[str, str]:
    """The demo organization's and account's ids, found the way a person finds them: a
    link on the organizations page, the admin's search by email."""
    if "{org}" in visit.path and "org" not in found:
        page.goto(base + "/console/organizations")
        hrefs = page.eval_on_selector_all(
            "a[href*='/console/organizations/']", "els => els.map(e => e.getAttribute('href'))")
        ids = [m.group(1) for h in hrefs
               if (m := re.search(r"/console/organizations/([0-9a-f-]{36})$", h or ""))]
        if not ids:
            raise WalkFailed("no organization is linked from /console/organizations: is "
                             "the demo filled (`hopsplane dev --demo`)?")
        found["org"] = ids[0]
    if "{account}" in visit.path and "account" not in found:
        page.goto(f"{base}/console/admin/find?q={demo.OWNER.email}")
        matched = re.search(r"/console/admin/accounts/([^/?#]+)$", page.url)
        if matched is None:
            raise WalkFailed(f"the admin's search did not open the demo account: {page.url}")
        found["account"] = matched.group(1)
    return {k: v for k, v in found.items()}


@contextmanager
def demo_world(env: dict[str, str] | None = None,
               log: Path | None = None) -> Iterator[str]:
    """`hopsplane dev --demo` as a child process on a free port (with this process's
    environment, or ``env``); yields its base URL once it answers, and stops it with
    Ctrl-C's signal afterwards."""
    import httpx

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    environment = dict(env if env is not None else os.environ)
    environment.pop("HOPSPLANE_PUBLIC_URL", None)
    sink = log.open("w") if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen(  # noqa: S603 (this interpreter, fixed arguments)
        [sys.executable, "-m", "hopsplane", "dev", "--demo", "--port", str(port)],
        env=environment, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + READY_SECONDS
        while True:
            if proc.poll() is not None:
                raise WalkFailed(f"`hopsplane dev --demo` exited with {proc.returncode}"
                                   + _tail(log, sink))
            if time.monotonic() > deadline:
                raise WalkFailed(f"`hopsplane dev --demo` did not answer at {base} within "
                                   f"{READY_SECONDS} s" + _tail(log, sink))
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        yield base
    finally:
        stop(proc)
        if log is not None and not isinstance(sink, int):
            sink.close()


def _tail(log: Path | None, sink: Any) -> str:
    if log is None:
        return ""
    if not isinstance(sink, int):
        sink.flush()
    return ":\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:])


def stop(proc: subprocess.Popen[bytes], grace: float = 60) -> None:
    """SIGINT, as Ctrl-C; SIGKILL if it has not ended within ``grace`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chromium_path() -> Path:
    """Chromium on PATH, else Debian's place."""
    return Path(shutil.which("chromium") or "/usr/bin/chromium")
