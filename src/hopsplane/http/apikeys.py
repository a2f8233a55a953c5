"""How a route lets API keys in: ``openapi_extra=key_scope(Scope.BALANCE_READ)`` states the
scope a key needs there (in OpenAPI, and for ``deps.current_principal``, which refuses a
key on every route without one)."""

from __future__ import annotations

from typing import Any

from hopsplane.apikeys.rules import Scope
from hopsplane.http.deps import API_KEY_SCOPE


def key_scope(scope: Scope) -> dict[str, Any]:
    return {API_KEY_SCOPE: scope.value}
