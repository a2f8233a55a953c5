"""Shapes of auto top-up, shared by the service, the API, the console and the CLI."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hopsplane.money import Amount

AutoTopupStatus = Literal["off", "awaiting_card", "on", "paused"]


class AutoTopupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: Amount = Field(description="Charge when usage takes the balance below this.")
    amount: Amount = Field(description="What each auto top-up buys (a valid top-up amount).")
    accept_terms: bool = Field(
        description="True: the caller agrees to the terms returned in `terms` (stored with "
        "who and when). Required: without it nothing is changed (422).",
        json_schema_extra={"enum": [True]},
    )


class ConsentOut(BaseModel):
    given_by: str
    given_at: datetime
    terms: str
    revoked_at: datetime | None = None


class AttemptOut(BaseModel):
    id: uuid.UUID
    status: str
    amount: Decimal
    threshold: Decimal
    balance_at_crossing: Decimal
    tries: int
    payment_intent_id: str | None
    outcome: str | None
    next_try_at: datetime | None
    created_at: datetime
    updated_at: datetime


class AutoTopupOut(BaseModel):
    account_owner_id: str
    status: AutoTopupStatus
    paused_reason: str | None = None
    threshold: Decimal | None = None
    amount: Decimal | None = None
    currency: str | None = None
    card: str | None = Field(None, description="The saved card, e.g. 'visa ending 4242'.")
    consent: ConsentOut | None = None
    consecutive_failures: int = 0
    today: date | None = None
    today_count: int = 0
    today_amount: Decimal = Decimal("0.00")
    max_per_day: int
    max_amount_per_day: Decimal
    last_attempt: AttemptOut | None = None
    action_required: AttemptOut | None = Field(
        None, description="An auto top-up waiting for the owner to authenticate (3-D Secure)."
    )
    terms: str | None = Field(None, description="The terms that apply to these settings.")


class CheckoutLinkOut(BaseModel):
    session_id: str
    url: str


@dataclass(frozen=True, slots=True)
class ChargePlan:
    """One try of one attempt, decided under the account's auto top-up lock."""

    attempt_id: uuid.UUID
    account_owner_id: str
    try_no: int
    customer_id: str
    payment_method_id: str
    amount: Decimal
    currency: str
