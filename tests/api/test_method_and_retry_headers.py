"""Two headers HTTP asks for: a 405 lists in ``Allow`` every method the path answers
(Starlette names only the first route's), and every 503, console pages included, says
when to come back (``Retry-After``)."""

from __future__ import annotations

from collections import defaultdict

from fastapi.testclient import TestClient

from hopsplane.api.app import create_app
from hopsplane.config import Settings
from tests.apps import Api, signed_in

PROBE_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _methods_by_path(app: object) -> dict[str, set[str]]:
    spec = app.openapi()  # type: ignore[attr-defined]
    found: dict[str, set[str]] = defaultdict(set)
    for path, item in spec["paths"].items():
        found[path].update(m.upper() for m in item if m.upper() in PROBE_METHODS)
    return found


def test_every_405_lists_every_method_of_its_path(settings: Settings) -> None:
    # 405 is decided by the router before any dependency: no database is touched
    app = create_app(settings, database=object())  # type: ignore[arg-type]
    client = TestClient(app)
    several = 0
    for path, methods in _methods_by_path(app).items():
        concrete = path.replace("{", "").replace("}", "")  # any value matches a parameter
        missing = [m for m in PROBE_METHODS if m not in methods]
        if not missing:
            continue
        answer = client.request(missing[0], concrete)
        assert answer.status_code == 405, (path, missing[0], answer.status_code)
        allowed = {m.strip() for m in answer.headers["allow"].split(",")}
        expected = methods | ({"HEAD"} if "GET" in methods else set())
        assert allowed == expected, (path, allowed, expected)
        several += len(methods) > 1
    assert several >= 5  # paths with a route per method are the ones that were wrong


def test_a_shed_console_page_says_when_to_retry(web: Api) -> None:
    signed_in(web, "shed@example.com")
    admission = web.app.state.admission
    admission.inflight = admission.limit  # as if the process were full
    try:
        page = web.client.get("/console/usage", follow_redirects=False)
    finally:
        admission.inflight = 0
    assert page.status_code == 503 and page.headers["retry-after"] == "1"
    assert page.headers["content-type"].startswith("text/html")

