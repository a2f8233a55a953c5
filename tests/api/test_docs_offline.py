"""/docs is Swagger UI served from this server: no CDN, so it renders offline."""

from __future__ import annotations

import re

from tests.apps import Api


def test_docs_load_everything_from_this_server(api: Api) -> None:
    page = api.client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(a.startswith("/docs/assets/") for a in assets), assets
    assert "://" not in "".join(assets)
    for asset in assets:
        r = api.client.get(asset)
        assert r.status_code == 200 and len(r.content) > 500, asset
    assert "SwaggerUIBundle" in api.client.get("/docs/assets/swagger-ui-bundle.js").text
    assert api.client.get("/docs/oauth2-redirect").status_code == 200
