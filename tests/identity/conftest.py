"""Fixtures of the identity and teams tests: an app whose identity is the local development
issuer (real RSA keys, real JWKS over HTTP), callers with real access tokens."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from hopsplane.api.app import create_app
from hopsplane.config import Settings
from hopsplane.db.engine import Database
from hopsplane.integrations.auth0 import LocalIssuer
from hopsplane.integrations.email import LogMailer


@dataclass
class RecordingHooks:
    """AccountHooks that write down what happened (the outcome other domains act on)."""

    events: list[tuple[str, ...]] = field(default_factory=list)

    def account_created(self, session: Session, owner_id: str) -> None:
        self.events.append(("account_created", owner_id))

    def member_joined(self, session: Session, member_id: str, owner_id: str) -> None:
        self.events.append(("member_joined", member_id, owner_id))

    def member_removed(self, session: Session, member_id: str, owner_id: str) -> None:
        self.events.append(("member_removed", member_id, owner_id))

    def project_assigned(self, session: Session, member_id: str, project_id: int) -> None:
        self.events.append(("project_assigned", member_id, str(project_id)))

    def account_closing(self, session: Session, owner_id: str) -> None:
        self.events.append(("account_closing", owner_id))

    def account_suspended(self, session: Session, owner_id: str) -> None:
        self.events.append(("account_suspended", owner_id))

    def account_resumed(self, session: Session, owner_id: str) -> None:
        self.events.append(("account_resumed", owner_id))


def id_settings(**overrides: object) -> Settings:
    base: dict[str, object] = {
        "environment": "test",
        "secret_key": "s" * 40,
        "encryption_keys": "dGVzdC1rZXktZm9yLWhvcHNwbGFuZS10ZXN0cy0zMmI=",
        "auth_dev_issuer": True,
        "public_url": "http://console.test",
        "_env_file": None,
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


class Api:
    """A TestClient plus helpers to act as someone with a real access token."""

    def __init__(self, app: FastAPI, client: TestClient) -> None:
        self.app, self.client = app, client
        self.hooks = RecordingHooks()
        app.state.account_hooks = self.hooks
        self.mailer = LogMailer()
        app.state.mailer = self.mailer

    @property
    def issuer(self) -> LocalIssuer:
        issuer = self.app.state.identity.dev_issuer
        assert issuer is not None
        return issuer

    @property
    def db(self) -> Database:
        db: Database = self.app.state.database
        return db

    def token(self, sub: str, email: str | None = None, verified: bool = True) -> str:
        return self.issuer.issue(sub, email=email or f"{sub.split('|')[-1]}@example.com",
                                 email_verified=verified)

    def auth(self, sub: str, email: str | None = None, verified: bool = True) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(sub, email, verified)}"}

    def new_user(self, *, admin: bool = False, email: str | None = None) -> tuple[str, dict[str, str]]:
        """A user created by their first request; returns (id, headers)."""
        sub = f"auth0|{uuid.uuid4().hex[:12]}"
        headers = self.auth(sub, email)
        r = self.client.get("/v1/me", headers=headers)
        assert r.status_code == 200, r.text
        if admin:
            with self.db.transaction() as s:
                s.execute(text("UPDATE users SET is_platform_admin = true WHERE id = :id"),
                          {"id": sub})
        return sub, headers

    def last_token(self) -> str:
        body = self.mailer.sent[-1].body
        return body.split("token=")[1].split()[0]


@pytest.fixture
def api(fresh_db: Database) -> Iterator[Api]:
    app = create_app(id_settings(), database=fresh_db)
    # https: outside development the session cookies are Secure, and a client keeps
    # them only for https.
    with TestClient(app, base_url="https://testserver") as client:
        yield Api(app, client)
