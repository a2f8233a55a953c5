"""The OpenAPI description says what the API accepts: for every operation, schemathesis
generates requests the spec allows (positive cases), as an account owner and as a platform
admin, and none may be refused as bad input. A 4xx is allowed only where it answers state,
not input: a missing id (404), a conflict (409), payment required (402), a role (401/403),
an unavailable dependency (503), a rate limit (429). A 400 or 422 for spec-valid input means
the spec is looser than the validation behind it, and is a failure (so is any status the
operation does not declare), except for the rules
OpenAPI cannot express, which are named in UNSTATABLE with their reason."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from hopsplane.api.app import create_app
from hopsplane.db.engine import Database
from tests.apps import Api, id_settings
from tests.payments.fakes import TEST_KEY, WEBHOOK_SECRET, StripeFront

pytestmark = pytest.mark.slow  # generated requests over the whole spec: a minute or more

EXAMPLES = 8  # positive cases per operation and caller
SKIP = {"/metrics"}  # Prometheus text, not JSON; covered by tests/api
STATE = {401, 402, 403, 404, 409, 429, 503}  # answers about state or role, never about input

# Rules OpenAPI cannot state, each said in its operation's description and 422 response: a
# 422 whose detail names one of them is the only refusal of spec-valid input this test
# accepts, and only for these operations.
RANGE = ("`to` must not be before `from`", "days per request")
UNSTATABLE: dict[str, tuple[str, tuple[str, ...]]] = {
    "GET /v1/account/usage": ("between two parameters: `to` after `from`, <= 366 days", RANGE),
    "GET /v1/account/usage.csv": ("between two parameters, as /v1/account/usage", RANGE),
    "GET /v1/admin/accounts/{account_id}/usage": ("as /v1/account/usage", RANGE),
    "POST /v1/usage/events": (
        "relative to today: usage older than HOPSPLANE_USAGE_MAX_AGE_DAYS or in the future",
        ("older than", "in the future"),
    ),
    "POST /v1/admin/clusters": (
        "whether a CA bundle's blocks hold certificates OpenSSL loads; between two fields: "
        "Prometheus basic auth takes a user and a password, together",
        ("is not a readable PEM certificate bundle", "needs both prometheus_username"),
    ),
    "PATCH /v1/admin/clusters/{cluster_id}": (
        "as POST /v1/admin/clusters",
        ("is not a readable PEM certificate bundle", "needs both prometheus_username"),
    ),
    "POST /v1/organizations": (
        "which characters Unicode calls printable: hundreds of ranges, no portable pattern",
        ("printable characters",),
    ),
    "POST /v1/account/api-keys": ("as POST /v1/organizations: a key's name", ("printable",)),
    "POST /v1/account/webhooks": (
        "what a host is (a public address or not) and the server's environment (http only in "
        "development); which characters Unicode calls printable",
        ("must start with https://", "not a public address", "never reach localhost",
         "printable text", "user name or password", "needs a host", "not a URL",
         "#fragment", "spaces or control characters"),
    ),
    "PATCH /v1/account/webhooks/{endpoint_id}": (
        "as POST /v1/account/webhooks: which characters Unicode calls printable",
        ("printable text",),
    ),
    "POST /v1/admin/accounts/{account_id}/grants": (
        "relative to now: an expiry in the future and within ten years",
        ("not in the future", "within ten years"),
    ),
}
OPAQUE = ("cursor is not one this",)
"""A cursor in URL-safe base64 (the spec's pattern) that decodes to no position a list gave
out: what an opaque token holds is beyond a schema (team members and invites, admin users,
clusters)."""


def has_float(value: object) -> bool:
    """JSON Schema counts 5.0 as an integer, and the API refuses a JSON float for money and
    quantities (no binary float is ever taken for an amount): no schema can tell 5 from
    5.0, so a refused body holding a float is not the spec's fault."""
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(has_float(v) for v in value)
    return False


def refusals(operation: Any, headers: dict[str, str]) -> list[str]:
    """Run EXAMPLES positive cases; return a line per refusal of spec-valid input."""
    found: list[str] = []
    label = f"{operation.method.upper()} {operation.path}"
    declared = set(operation.definition.raw.get("responses", {}))

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
    def run(case: schemathesis.Case) -> None:
        response = case.call(headers=headers, allow_redirects=False)
        status = response.status_code
        if str(status) not in declared and "default" not in declared:
            found.append(f"{label} -> {status} (not declared): {response.text[:200]}")
            return
        if status < 400 or status >= 500 or status in STATE:
            return
        words = (*UNSTATABLE.get(label, ("", ()))[1], *OPAQUE)
        if status == 422 and (any(w in response.text for w in words) or has_float(case.body)):
            return
        found.append(f"{label} -> {status}: {response.text[:300]}")

    with contextlib.suppress(Unsatisfiable):
        run()
    return found


def test_every_request_the_spec_allows_is_accepted_as_input(
    fresh_db: Database, stripe_front: StripeFront
) -> None:
    app = create_app(
        id_settings(rate_limit_invites_per_hour=100_000, rate_limit_accepts_per_hour=100_000,
                    stripe_secret_key=TEST_KEY, stripe_webhook_secret=WEBHOOK_SECRET,
                    stripe_api_base=stripe_front.url),
        database=fresh_db,
    )
    with TestClient(app) as client:
        api = Api(app, client)
        _, owner_headers = api.new_user()
        _, admin_headers = api.new_user(admin=True)
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        flagged: dict[str, list[str]] = {}
        operations = 0
        for result in schema.get_all_operations():
            operation = result.ok()
            if operation.path in SKIP:
                continue
            operations += 1
            for headers in (admin_headers, owner_headers):
                for line in refusals(operation, headers):
                    flagged.setdefault(line.split(" -> ")[0], []).append(line)
        for label in sorted(flagged):
            print(flagged[label][0])
        assert operations > 30
        assert not flagged, sorted(flagged)
