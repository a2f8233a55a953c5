"""Every route of the app, walked by five callers. The expected answer comes from the guard
each route declares (MemberDep / OwnerDep / AdminDep), so routes added later are covered
without touching this file; a route without a guard must be on the anonymous allowlist."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import text
from starlette.routing import Route

from hopsplane.api.app import create_app
from hopsplane.api.routers.usage import usage_submitter
from hopsplane.apikeys import rules as key_rules
from hopsplane.db.engine import Database
from hopsplane.http.deps import (
    API_KEY_SCOPE,
    OwnerDep,
    require_admin,
    require_buyer,
    require_ledger,
    require_member,
    require_owner,
    require_team_admin,
    require_webhooks,
)
from hopsplane.http.forms import csrf_for
from hopsplane.http.organizations import require_org_manager
from hopsplane.teams.rules import hash_token
from tests.apps import id_settings

ANONYMOUS = {
    ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"),
    ("GET", "/auth/login"), ("GET", "/auth/callback"), ("POST", "/auth/logout"),
    ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"), ("HEAD", "/openapi.json"), ("HEAD", "/docs"),
    ("HEAD", "/docs/oauth2-redirect"), ("HEAD", "/redoc"),
    ("POST", "/v1/stripe/webhook"),  # authenticated by the Stripe-Signature of its body
    ("GET", "/"),  # a redirect to the console, which has its own guards
    ("GET", "/console/signed-out"),  # "you are signed out": shows nothing of anyone
}
"""Routes anyone may call: health, metrics, the API description, the sign-in redirects.
Signed webhooks (Stripe) belong here too, and nothing else."""

GUARDS = {
    require_member: "member", require_owner: "owner", require_admin: "admin",
    # "platform admin or a cluster's ingestion token": to people, an admin-only route
    usage_submitter: "admin",
    # the owner, or a person whose organization role delegates it (the world's member has
    # the plain `member` role, so to this walk they are owner-only)
    require_ledger: "owner", require_buyer: "owner", require_team_admin: "owner",
    require_org_manager: "owner", require_webhooks: "owner",
}
RANK = {"member": 1, "owner": 2, "admin": 3}
CALLERS = ("anonymous", "member", "other_owner", "admin", "key", "owner")  # owner last: mutates
"""``key``: an API key of the owner's account holding every scope: it passes exactly the
routes that state a scope (``x-api-key-scope``), as the account, and is refused (403)
everywhere else, admin routes included."""
DENIED = {401, 403}

BODIES: dict[str, dict[str, Any]] = {
    "/v1/team/invites": {"email": "walker@example.com"},
    "/v1/team/members/{member_id}/project": {"hopsworks_project_id": 5},
    "/v1/invites/accept": {"token": "t" * 43},
    "/v1/organizations": {"name": "Walkers"},
    "/v1/account/auto-topup": {"threshold": "20.00", "amount": "50.00", "accept_terms": True},
    "/v1/organizations/{org_id}/members": {"email": "{member_email}", "role": "member"},
    "/v1/account/budgets/{member_id}": {"monthly_budget": "50.00", "enforce": True},
    "/v1/account/api-keys": {"name": "walk", "scopes": ["balance:read"]},
}
FORMS: dict[str, dict[str, str]] = {
    "/console/team/invites": {"email": "walker@example.com"},
    "/console/topup": {"amount": "20"},
    "/console/invites/accept": {"token": "t" * 43},
    "/console/admin/accounts/{account_id}/grant": {"amount": "1", "reason": "walk", "key": "k"},
    "/console/organizations": {"name": "Walkers"},
    "/console/auto-topup": {"threshold": "20.00", "amount": "50.00", "accept_terms": "yes"},
    "/console/auto-topup/review": {"threshold": "20.00", "amount": "50.00"},
    "/console/organizations/{org_id}/members": {"email": "{member_email}", "role": "member"},
    "/console/team/budgets": {"member_id": "{member_id}", "monthly_budget": "50"},
    "/console/team/members/{member_id}/project": {"hopsworks_project_id": "5"},
    "/console/api-keys": {"name": "walk", "scope:balance:read": "on"},
}
"""Console forms (urlencoded, without their CSRF token: a guard must answer first)."""
"""Valid bodies of routes that need one, so that a request reaches the resource lookup
(an invalid body is refused with 422 before the handler can say 404)."""


@dataclass
class Endpoint:
    path: str
    methods: list[str]
    route: APIRoute | None  # None: a plain Starlette route (docs, openapi.json)


def endpoints(app: Any) -> list[Endpoint]:
    """Every route with its full path, through included routers (FastAPI >= 0.13x keeps
    them nested; older versions flatten them into app.routes)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: app.routes is already flat
        return [
            Endpoint(r.path, sorted(r.methods or []), r if isinstance(r, APIRoute) else None)
            for r in app.routes if isinstance(r, Route)
        ]
    found = []
    for ctx in iter_route_contexts(app.routes):
        original = ctx.original_route
        if ctx.path is None or not isinstance(original, Route):
            continue
        found.append(Endpoint(
            ctx.path, sorted(ctx.methods or []),
            original if isinstance(original, APIRoute) else None,
        ))
    return found


def guard_of(dependant: Dependant) -> str | None:
    found: list[str] = []

    def walk(dep: Dependant) -> None:
        if dep.call in GUARDS:
            found.append(GUARDS[dep.call])  # type: ignore[index]
        for sub in dep.dependencies:
            walk(sub)

    walk(dependant)
    return max(found, key=RANK.__getitem__) if found else None


@dataclass
class World:
    """Account A (owner, member with a project, a pending invite), owner B, an admin."""

    tokens: dict[str, str]
    params: dict[str, str]


def build_world(db: Database, issue: Any) -> World:
    tag = uuid.uuid4().hex[:8]
    ids = {c: f"auth0|{c}-{tag}" for c in CALLERS if c not in ("anonymous", "key")}
    with db.transaction() as s:
        for caller in ("owner", "other_owner", "admin"):
            s.execute(text("INSERT INTO users (id, email, is_platform_admin) VALUES (:i, :e, :a)"),
                      {"i": ids[caller], "e": f"{caller}-{tag}@example.com",
                       "a": caller == "admin"})
        s.execute(text("INSERT INTO users (id, email, account_owner_id, hopsworks_project_id) "
                       "VALUES (:i, :e, :o, 3)"),
                  {"i": ids["member"], "e": f"member-{tag}@example.com", "o": ids["owner"]})
        invite = s.execute(text(
            "INSERT INTO team_invites (account_owner_id, email, token_hash, expires_at) "
            "VALUES (:o, :e, :h, now() + interval '7 days') RETURNING id"),
            {"o": ids["owner"], "e": f"pending-{tag}@example.com",
             "h": hash_token(uuid.uuid4().hex)}).scalar_one()
        org = s.execute(text(
            "INSERT INTO organizations (name, owner_id) VALUES ('Walk', :o) RETURNING id"),
            {"o": ids["owner"]}).scalar_one()
        s.execute(text("INSERT INTO organization_members (organization_id, user_id, role) "
                       "VALUES (:g, :m, 'member')"), {"g": org, "m": ids["member"]})
    tokens = {c: issue(i, email=f"{c}-{tag}@example.com") for c, i in ids.items()}
    tokens["key"] = key_rules.new_key()
    with db.transaction() as s:
        s.execute(text(
            "INSERT INTO hopsplane.api_keys (account_owner_id, name, token_sha256,"
            " display_prefix, scopes, created_by, expires_at) VALUES (:o, 'walk', :h, 'hpk',"
            " CAST(:s AS text[]), :o, now() + interval '1 day')"),
            {"o": ids["owner"], "h": key_rules.digest(tokens["key"]),
             "s": [sc.value for sc in key_rules.Scope]})
    params = {"invite_id": str(invite), "member_id": ids["member"], "user_id": ids["member"],
              "org_id": str(org), "member_email": f"member-{tag}@example.com"}
    return World(tokens, params)


def _filled(body: dict[str, Any], world: World) -> dict[str, Any]:
    """A body with this world's values in place of ``{member_email}`` and the like."""
    return {k: v.format(**world.params) if isinstance(v, str) and "{" in v else v
            for k, v in body.items()}


def fill(path: str, params: dict[str, str]) -> tuple[str, bool]:
    """The path with A's resources in it; whether every parameter named one of them."""
    names = re.findall(r"{(\w+)(?::\w+)?}", path)
    known = bool(names) and all(n in params for n in names)
    for n in names:
        path = re.sub(r"{" + n + r"(?::\w+)?}", params.get(n, "unknown"), path)
    return path, known


def expected_ok(guard: str | None, caller: str) -> bool:
    """May the caller pass the guard?"""
    if guard is None:
        return True
    if caller == "anonymous":
        return False
    if guard == "admin":
        return caller == "admin"
    if guard == "owner":
        return caller != "member"
    return True


def unguarded(app: Any) -> list[tuple[str, str]]:
    return [
        (m, e.path) for e in endpoints(app) for m in e.methods
        if (e.route is None or guard_of(e.route.dependant) is None)
        and (m, e.path) not in ANONYMOUS
    ]


def test_every_route_declares_a_guard_or_is_allowlisted(fresh_db: Database) -> None:
    app = create_app(id_settings(), database=fresh_db)
    assert {"/v1/me", "/healthz", "/v1/team/invites"} <= {e.path for e in endpoints(app)}
    leaks = unguarded(app)
    assert leaks == [], f"routes without a guard (declare MemberDep/OwnerDep/AdminDep): {leaks}"


def test_the_walk_catches_a_route_added_without_a_guard(fresh_db: Database) -> None:
    app = create_app(id_settings(), database=fresh_db)
    router = APIRouter(prefix="/v1/new")

    @router.get("/leak")
    def leak() -> dict[str, str]:
        return {}

    @router.get("/guarded")
    def guarded(p: OwnerDep) -> dict[str, str]:
        return {}

    app.include_router(router)
    assert unguarded(app) == [("GET", "/v1/new/leak")]
    by_path = {e.path: e for e in endpoints(app)}
    route = by_path["/v1/new/guarded"].route
    assert route is not None and guard_of(route.dependant) == "owner"


def test_five_callers_get_what_the_guards_promise(fresh_db: Database) -> None:
    app = create_app(id_settings(), database=fresh_db)
    issuer = app.state.identity.dev_issuer
    checked = 0
    with TestClient(app) as client:
        for endpoint in endpoints(app):
            if endpoint.route is None:
                continue
            guard = guard_of(endpoint.route.dependant)
            for method in endpoint.methods:
                world = build_world(fresh_db, issuer.issue)
                url, names_a_resource = fill(endpoint.path, world.params)
                for caller in CALLERS:
                    headers = (
                        {} if caller == "anonymous"
                        else {"Authorization": f"Bearer {world.tokens[caller]}"}
                    )
                    kwargs: dict[str, Any] = {"headers": headers, "follow_redirects": False}
                    page = endpoint.path.startswith("/console")
                    if page and method == "POST":  # a console form, with the caller's token
                        proof = headers.get("Authorization", "")
                        kwargs["data"] = {**_filled(FORMS.get(endpoint.path, {}), world),
                                          "csrf": csrf_for(app.state.settings, proof)}
                    elif method in ("POST", "PUT", "PATCH"):
                        kwargs["json"] = _filled(BODIES.get(endpoint.path, {}), world)
                    r = client.request(method, url, **kwargs)
                    where = f"{caller} {method} {endpoint.path} -> {r.status_code} {r.text[:200]}"
                    unconfigured = r.status_code == 503 and "not configured" in r.text
                    assert r.status_code < 500 or unconfigured, where  # e.g. no Stripe key
                    if r.status_code >= 400:  # the error shape: JSON, or a page saying why
                        assert 'role="alert"' in r.text if page else "error" in r.json(), where
                    if guard is None:
                        pass  # anonymous routes answer for themselves (a bad callback is 401)
                    elif caller == "key":
                        scope = (endpoint.route.openapi_extra or {}).get(API_KEY_SCOPE)
                        if scope is None:
                            assert r.status_code == 403, where
                            assert "API keys may not use this route" in r.text, where
                        else:
                            assert r.status_code not in DENIED, where
                    elif not expected_ok(guard, caller):
                        if caller == "anonymous" and page and method == "GET":
                            # a page sends the signed-out visitor to sign in, and back
                            assert r.status_code == 303, where
                            back = "/auth/login?return_to=" + quote(url, safe="/")
                            assert r.headers["location"] == back, where
                            continue
                        want = 401 if caller == "anonymous" else 403
                        assert r.status_code == want, where
                    else:
                        assert r.status_code not in DENIED, where
                        body_ok = (method in ("GET", "DELETE") or endpoint.path in BODIES
                                   or page)
                        if guard == "owner" and names_a_resource and body_ok:
                            if caller in ("other_owner", "admin"):
                                assert r.status_code == 404, where  # A's data stays A's
                            if caller == "owner":
                                assert r.status_code != 404, where
                    checked += 1
    assert checked >= 5 * 10


def test_the_spec_says_how_to_authenticate_on_every_guarded_operation(fresh_db: Database) -> None:
    spec = create_app(id_settings(), database=fresh_db).openapi()
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    me = spec["paths"]["/v1/me"]["get"]
    assert {"bearerAuth": []} in me["security"]
    assert "security" not in spec["paths"]["/healthz"]["get"]
    for path, item in spec["paths"].items():
        for method, op in item.items():
            declared = set(op.get("responses", {}))
            if "security" in op:
                assert {"401", "403"} <= declared, (method, path)
                # whether an API key may call it, and with which scope
                assert "x-api-key-scope" in op, (method, path)
                scope = op["x-api-key-scope"]
                assert (scope is None) == ({"apiKey": [scope]} not in op["security"]), path
            if op.get("parameters") or op.get("requestBody"):
                assert "422" in declared, (method, path)
