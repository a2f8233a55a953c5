"""Security headers of the console's pages and the sign-in routes.

The Content-Security-Policy allows nothing by default: no scripts at all, the one
stylesheet inlined in base.html by its SHA-256 (so an injected ``<style>`` or ``<script>``
does nothing), images from this site only, no plugins, no ``<base>``, and no framing by any
other site (``frame-ancestors 'none'`` with ``X-Frame-Options: DENY`` for old browsers).
``form-action`` is left open: sign-out and top-up forms end in a redirect to the identity
provider and to Stripe, which browsers check against it.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request, Response

TEMPLATES = Path(__file__).parent / "templates"
CONSOLE_CSS = (TEMPLATES / "console.css").read_text(encoding="utf-8")
"""The console's stylesheet, inlined by base.html as ``{{ console_css }}``."""


def _sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    f"style-src 'sha256-{_sha256(CONSOLE_CSS)}'",
    "img-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
])

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


def is_page(path: str) -> bool:
    """The console's pages, the sign-in routes and the root's redirect."""
    return path in ("/", "/console") or path.startswith(("/console/", "/auth/"))


def install_security_headers(app: FastAPI) -> None:
    @app.middleware("http")
    async def _headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        if is_page(request.url.path):
            for name, value in HEADERS.items():
                response.headers.setdefault(name, value)
        return response
