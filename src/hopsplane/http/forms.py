"""HTML forms: urlencoded bodies and the CSRF token that every console form carries.

The token is bound to the caller's credentials: an HMAC, under the secret key, of the
session cookie (browsers) or of the Authorization header (scripts, which no other site can
make a browser send). A form posted from another site cannot know it; the cookie's
SameSite=Lax is the first line, this is the second.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, Request

from hopsplane.config import Settings
from hopsplane.errors import Forbidden, Invalid, PayloadTooLarge
from hopsplane.http.session_cookie import SESSION_COOKIE

MAX_FORM_BYTES = 16 * 1024


def csrf_for(settings: Settings, credentials: str) -> str:
    key = hashlib.sha256(f"hopsplane:csrf:{settings.effective_secret_key}".encode()).digest()
    return hmac.new(key, credentials.encode(), hashlib.sha256).hexdigest()


def csrf_token(request: Request) -> str:
    """Bound to the caller's credentials: the session cookie (browsers), else the bearer
    header (a script, which no other site can make a browser send)."""
    proof = request.cookies.get(SESSION_COOKIE) or request.headers.get("authorization", "")
    return csrf_for(request.app.state.settings, proof)


async def read_form(request: Request) -> dict[str, str]:
    """The posted form (urlencoded), one value per field; the CSRF token not checked."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise PayloadTooLarge(f"a console form is at most {MAX_FORM_BYTES} bytes")
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise Invalid("the form is not UTF-8") from exc
    return {k: v[-1] for k, v in parsed.items()}


def check_csrf(request: Request, fields: dict[str, str]) -> None:
    # Compared as bytes: compare_digest refuses str with non-ASCII characters (a TypeError,
    # which would be a 500 for a hand-made form).
    sent = fields.get("csrf", "").encode("utf-8", "surrogatepass")
    if not hmac.compare_digest(sent, csrf_token(request).encode()):
        raise Forbidden("the form expired or came from another site: reload the page and retry")


async def form_fields(request: Request) -> dict[str, str]:
    """The posted form, with its CSRF token checked."""
    fields = await read_form(request)
    check_csrf(request, fields)
    return fields


FormDep = Annotated[dict[str, str], Depends(form_fields)]
