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
from pathlib import Path

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
    # A plain ASGI middleware (not @app.middleware("http")): it neither copies the answer
    # through a stream of its own nor hides a failed send from the serving middleware.
    app.add_middleware(_SecurityHeaders)


class _SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_page(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": list(message.get("headers", []))}
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, with_headers)
