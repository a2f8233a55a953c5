"""Test data. Users are inserted directly until the accounts domain exists."""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy.orm import Session

from hopsplane.credits import service as credits
from hopsplane.credits.rules import EntryType
from hopsplane.credits.schemas import Posting, PostResult
from hopsplane.db.models import User


def make_user(session: Session, *, owner: str | None = None, admin: bool = False) -> str:
    uid = f"auth0|{uuid.uuid4().hex[:12]}"
    session.add(
        User(id=uid, email=f"{uid[6:]}@example.com", account_owner_id=owner,
             is_platform_admin=admin)
    )
    session.flush()
    return uid


def post(
    session: Session,
    account: str,
    entry_type: EntryType | str,
    amount: str | Decimal,
    key: str | None = None,
    **kwargs: object,
) -> PostResult:
    return credits.post(
        session,
        Posting(
            account_owner_id=account,
            entry_type=EntryType(entry_type),
            amount=Decimal(amount),
            idempotency_key=key or uuid.uuid4().hex,
            **kwargs,  # type: ignore[arg-type]
        ),
    )
