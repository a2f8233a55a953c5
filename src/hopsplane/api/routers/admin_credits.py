"""Platform admins: any account's balance, ledger and usage; grants, refunds, prices."""

from __future__ import annotations

import re
import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictStr,
    StringConstraints,
)

from hopsplane.api.errors import DATE_RANGE_RULES, error_responses, with_rules
from hopsplane.api.routers.account import Cursor, Limit
from hopsplane.billing import service as billing
from hopsplane.billing.rules import parse_unit_price
from hopsplane.billing.schemas import PriceOverrideOut, UsageReport
from hopsplane.credits import service as credits
from hopsplane.credits.origins import AdminGrant, AdminRefund
from hopsplane.credits.schemas import LedgerEntryOut, PostResult, Standing
from hopsplane.errors import Invalid
from hopsplane.fields import Identifier, Reason, ShortText
from hopsplane.http.deps import AdminDep, PolicyDep, SessionDep
from hopsplane.http.pagination import DEFAULT_LIMIT, Page, ledger_page
from hopsplane.money import PositiveAmount

router = APIRouter(prefix="/v1/admin/accounts", tags=["admin"])

AccountId = Annotated[Identifier, Path(description="Owner's user id.")]
Key = Annotated[
    ShortText,
    Field(description="Idempotency key: a retry with the same key returns the original "
          "(no spaces around it).",
          json_schema_extra={"pattern": "^[^\\s\\u0000](?:[^\\u0000]*[^\\s\\u0000])?$"}),
]
Why = Annotated[Reason, Field(description="Why (kept).")]


class GrantIn(BaseModel):
    # A misspelt field is refused, never ignored: {"expires": ...} made a permanent grant.
    model_config = ConfigDict(extra="forbid")

    amount: PositiveAmount
    reason: Why
    idempotency_key: Key
    expires_at: AwareDatetime | None = Field(
        default=None,
        description="Promotional credit: when what is left of it expires (in the future, "
        "within ten years, with a timezone). Usage draws it first; the owner is told 7 "
        "days before. Without it the grant never expires.",
    )


class RefundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    purchase_id: uuid.UUID = Field(description="The purchase entry being reversed.")
    amount: PositiveAmount = Field(
        description="Dollars going back, positive (the entry is negative)."
    )
    reason: Why
    idempotency_key: Key


# 0 to 0.009999 with at most six decimals (billing.rules.parse_unit_price), written as
# plain decimal text: validation and the spec say the same
UNIT_PRICE = r"^[ \t]*\+?(?:0+(?:\.(?:00[0-9]{0,4})?0*)?|\.(?:00[0-9]{0,4}|0)0*)[ \t]*$"
_UNIT_PRICE = re.compile(UNIT_PRICE)


def _unit_price_text(value: str) -> str:
    try:  # the rule's own message (range, decimals) first
        parse_unit_price(value)
    except Invalid as exc:
        raise ValueError(exc.message) from exc
    if not _UNIT_PRICE.match(value):
        raise ValueError(f"unit_price must be plain decimal text such as 0.0001, got {value!r}")
    return value


class PriceOverrideIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    effective_from: date
    unit_price: Annotated[
        StrictStr, StringConstraints(max_length=40), AfterValidator(_unit_price_text)
    ] = Field(
        description="Dollars per compute unit, e.g. \"0.00008\" (0 to 0.009999, at most six "
        "decimals).",
        json_schema_extra={"pattern": UNIT_PRICE},
    )
    reason: Why


class PostedOut(BaseModel):
    entry: LedgerEntryOut
    created: bool
    events: list[str]


def _posted(result: PostResult, response: Response) -> PostedOut:
    response.status_code = 201 if result.created else 200
    return PostedOut(
        entry=result.entry, created=result.created, events=[e.kind for e in result.events]
    )


@router.get("/{account_id}/balance", response_model=Standing,
            responses=error_responses(401, 403, 404, 422))
def balance(account_id: AccountId, admin: AdminDep, session: SessionDep) -> Standing:
    """Any account's balance and standing."""
    return credits.standing(session, account_id)


@router.get("/{account_id}/ledger", response_model=Page[LedgerEntryOut],
            responses=error_responses(401, 403, 404, 422))
def ledger(
    account_id: AccountId, admin: AdminDep, session: SessionDep,
    limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None,
) -> Page[LedgerEntryOut]:
    """Any account's ledger, newest first."""
    return ledger_page(session, account_id, limit, cursor)


@router.get("/{account_id}/usage", response_model=UsageReport,
            responses=with_rules(error_responses(401, 403, 404, 422), DATE_RANGE_RULES))
def usage(
    account_id: AccountId, admin: AdminDep, session: SessionDep,
    date_from: Annotated[date, Query(alias="from")],
    date_to: Annotated[date, Query(alias="to")],
) -> UsageReport:
    """Any account's daily usage with the per-user breakdown. `to` must not be before
    `from`, and a request covers at most 366 days (422)."""
    return billing.usage_report(session, account_id, date_from, date_to)


@router.post("/{account_id}/grants", response_model=PostedOut, status_code=201,
             responses=error_responses(401, 403, 404, 409, 422,
                                       codes={409: (credits.KEY_REUSED,)}))
def grant(
    account_id: AccountId, body: GrantIn, admin: AdminDep, session: SessionDep,
    policy: PolicyDep, response: Response,
) -> PostedOut:
    """Free credit, promotional (expiring) with ``expires_at``. 201 when posted, 200 with
    the original entry on a retry."""
    result = credits.grant(
        session, account_id, body.amount, reason=body.reason,
        origin=AdminGrant(body.idempotency_key), granted_by=admin.user_id,
        expires_at=body.expires_at, hooks=policy.hooks, thresholds=policy.thresholds,
    )
    return _posted(result, response)


@router.post("/{account_id}/refunds", response_model=PostedOut, status_code=201,
             responses=error_responses(401, 403, 404, 409, 422,
                                       codes={409: credits.CONFLICT_CODES}))
def refund(
    account_id: AccountId, body: RefundIn, admin: AdminDep, session: SessionDep,
    policy: PolicyDep, response: Response,
) -> PostedOut:
    """Reverse (part of) a purchase; 409 beyond what is left of it or below zero."""
    result = credits.refund(
        session, account_id, body.purchase_id, body.amount, reason=body.reason,
        origin=AdminRefund(body.idempotency_key), refunded_by=admin.user_id,
        hooks=policy.hooks, thresholds=policy.thresholds,
    )
    return _posted(result, response)


@router.post("/{account_id}/price-overrides", response_model=PriceOverrideOut,
             status_code=201, responses=error_responses(401, 403, 404, 409, 422))
def set_price(
    account_id: AccountId, body: PriceOverrideIn, admin: AdminDep, session: SessionDep
) -> PriceOverrideOut:
    """The account's unit price from a day on; 409 when that day is already charged."""
    return billing.set_price_override(
        session, account_id, body.effective_from, body.unit_price,
        reason=body.reason, set_by=admin.user_id,
    )


@router.get("/{account_id}/price-overrides", response_model=list[PriceOverrideOut],
            responses=error_responses(401, 403, 404, 422))
def prices(account_id: AccountId, admin: AdminDep, session: SessionDep) -> list[PriceOverrideOut]:
    """The account's price overrides, newest first."""
    return billing.price_overrides(session, account_id)
