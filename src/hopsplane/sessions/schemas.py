"""Shapes of a browser session."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SessionIdentity:
    """Who a live session signed in as (what the identity provider's token said)."""

    sub: str
    email: str | None
    email_verified: bool
    name: str | None
