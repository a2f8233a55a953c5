"""Property-based fuzzing of the whole API from its own OpenAPI description (schemathesis):
valid and invalid requests, as an account owner and as a platform admin, over every
operation of the spec. Every check of schemathesis that applies runs: no server error,
status codes, content types, response headers and schemas conform to the spec, invalid
data is refused (negative_data_rejection), and the stateless auth and method checks. The
cases are derandomized (a fixed seed): every run replays the same ones."""

from __future__ import annotations

import contextlib
import zlib
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from hopsplane.api.app import create_app
from hopsplane.db.engine import Database
from tests.apps import Api, id_settings
from tests.payments.fakes import TEST_KEY, WEBHOOK_SECRET, StripeFront

pytestmark = pytest.mark.slow  # the OpenAPI fuzz: minutes of generated requests


EXAMPLES = 20  # per operation, caller and mode: 40 operations x 2 x 2 x 20 ≈ 3,000 cases
SHARDS = 4  # the operations split into four tests, so that xdist runs them side by side
SKIP = {"/metrics"}  # Prometheus text, not JSON; covered by tests/api
# Every other check runs (server errors, status codes, content types, response schemas and
# headers, invalid data must be rejected). "Schema-valid data must be accepted" is the
# positive fuzz (test_schemathesis_positive.py), which names the few rules a schema cannot
# state (opaque cursors, ranges between two fields, dates relative to today).


def fuzz(
    operation: Any, headers: dict[str, str], mode: GenerationMode, fixed: dict[str, Any]
) -> int:
    """Run EXAMPLES generated cases of one operation; return how many ran."""
    ran = 0

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=fixed or None))
    def run(case: schemathesis.Case) -> None:
        nonlocal ran
        ran += 1
        case.call_and_validate(
            headers=headers, allow_redirects=False, excluded_checks=[positive_data_acceptance]
        )

    with contextlib.suppress(Unsatisfiable):  # nothing invalid exists for an input-less operation
        run()
    return ran


def shard_of(label: str) -> int:
    return zlib.crc32(label.encode()) % SHARDS


@pytest.mark.parametrize("shard", range(SHARDS))
def test_fuzzing_the_openapi_spec_finds_no_server_error_and_no_schema_violation(
    fresh_db: Database, stripe_front: StripeFront, shard: int
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
        for i in range(3):
            client.post("/v1/team/invites", headers=owner_headers,
                        json={"email": f"fuzz{i}@example.com"})
        member = "auth0|fuzz-member"
        client.get("/v1/me", headers=api.auth(member, "fuzz0@example.com"))
        client.post("/v1/invites/accept", headers=api.auth(member, "fuzz0@example.com"),
                    json={"token": api.last_token().strip()})

        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        cases = 0
        operations = 0
        per_operation: dict[str, int] = {}
        for result in schema.get_all_operations():
            operation = result.ok()
            if operation.path in SKIP:
                continue
            label = f"{operation.method.upper()} {operation.path}"
            if shard_of(label) != shard:
                continue
            operations += 1
            for headers in (owner_headers, admin_headers):
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    fixed: dict[str, Any] = {}
                    if mode is GenerationMode.POSITIVE and headers is owner_headers:
                        names = {p.name for p in operation.path_parameters}
                        fixed = {k: v for k, v in {"member_id": member}.items() if k in names}

                    ran = fuzz(operation, headers, mode, fixed)
                    per_operation[label] = per_operation.get(label, 0) + ran
                    cases += ran
        print(f"schemathesis shard {shard}: {cases} generated cases over {operations} operations")
        spec = app.openapi()["paths"]
        every = {f"{m.upper()} {p}" for p, ops in spec.items() if p not in SKIP for m in ops}
        assert set(per_operation) == {k for k in every if shard_of(k) == shard}
        # every route of the spec was reached by its shard (the four shards cover them all)...
        with_input = {f"{m.upper()} {p}" for p, ops in spec.items() if p not in SKIP
                      for m, op in ops.items() if op.get("parameters") or op.get("requestBody")}
        short = {k: n for k, n in per_operation.items() if n < (EXAMPLES if k in with_input else 1)}
        assert not short, short  # ...each with enough cases
        assert operations > 0 and cases >= EXAMPLES * len(with_input & set(per_operation))
