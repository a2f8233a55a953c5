"""The caller's own account: balance, ledger, usage.

Balance and ledger are for the account owner. Usage is for every member of the account:
the owner sees each day with its per-user breakdown, a team member sees only their own
share (their units, their cost at the day's price, a breakdown holding only them).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from hopsplane.api.errors import DATE_RANGE_RULES, error_responses, with_rules
from hopsplane.apikeys.rules import Scope
from hopsplane.billing import service as billing
from hopsplane.billing.schemas import UsageReport
from hopsplane.clusters import service as clusters
from hopsplane.clusters.schemas import StoppedWorkloadOut
from hopsplane.credits import service as credits
from hopsplane.credits.schemas import Standing
from hopsplane.http import exports
from hopsplane.http.apikeys import key_scope
from hopsplane.http.deps import LedgerDep, MemberDep, OwnerDep, SessionDep, sees_account_usage
from hopsplane.http.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page, SeqCursor, ledger_page
from hopsplane.payments import receipts
from hopsplane.payments.schemas import LedgerEntryWithReceipt

router = APIRouter(prefix="/v1/account", tags=["account"])

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Entries per page.")]
Cursor = Annotated[
    SeqCursor | None, Query(description="`next_cursor` of the previous page; omit for the newest.")
]


@router.get("/balance", response_model=Standing, responses=error_responses(401, 403),
            openapi_extra=key_scope(Scope.BALANCE_READ))
def balance(principal: LedgerDep, session: SessionDep) -> Standing:
    """The account's balance and standing (suspended, last low-balance threshold)."""
    return credits.standing(session, principal.account_id)


@router.get(
    "/ledger", response_model=Page[LedgerEntryWithReceipt],
    responses=error_responses(401, 403, 422), openapi_extra=key_scope(Scope.LEDGER_READ))
def ledger(
    principal: LedgerDep, session: SessionDep, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Page[LedgerEntryWithReceipt]:
    """The account's ledger entries, newest first, with the running balance; a Stripe
    purchase carries the link to its receipt (`receipt_url`, the invoice's PDF in
    `receipt_pdf_url`) once Stripe has one, null otherwise."""
    page = ledger_page(session, principal.account_id, limit, cursor)
    return Page[LedgerEntryWithReceipt](
        items=receipts.with_receipts(session, principal.account_id, page.items),
        next_cursor=page.next_cursor,
    )


@router.get("/usage", response_model=UsageReport,
            responses=with_rules(error_responses(401, 403, 422), DATE_RANGE_RULES),
            openapi_extra=key_scope(Scope.USAGE_READ))
def usage(
    request: Request,
    principal: MemberDep,
    session: SessionDep,
    date_from: Annotated[date, Query(alias="from", description="First UTC day.")],
    date_to: Annotated[date, Query(alias="to", description="Last UTC day (inclusive).")],
) -> UsageReport:
    """Daily usage with the per-user breakdown. A team member sees only their own share.
    `to` must not be before `from`, and a request covers at most 366 days (422)."""
    member = None if sees_account_usage(request, principal, session) else principal.user_id
    return billing.usage_report(
        session, principal.account_id, date_from, date_to, member_id=member
    )


_CSV: dict[int | str, dict[str, object]] = {
    200: {"description": "CSV, one snapshot.", "content": {"text/csv": {}}}}


@router.get("/usage.csv", response_class=StreamingResponse,
            responses={**_CSV, **with_rules(error_responses(401, 403, 422), DATE_RANGE_RULES)},
            openapi_extra=key_scope(Scope.USAGE_READ))
def usage_csv(
    request: Request,
    principal: MemberDep,
    session: SessionDep,
    date_from: Annotated[date, Query(alias="from", description="First UTC day (1970-01-01 "
                                     "to 9998-12-31).", json_schema_extra=exports.EXPORT_DAY)],
    date_to: Annotated[date, Query(alias="to", description="Last UTC day, inclusive (1970-01-01 "
                                   "to 9998-12-31).", json_schema_extra=exports.EXPORT_DAY)],
) -> Response:
    """The days of `GET /v1/account/usage` as CSV, one row per day and member (`date,
    member, compute_units, cpu_hours, unit_price, cost`): members by name and email, usage
    of no current member under one label, each day's costs split as the usage chart splits
    them (they add up to the day's `total_cost`); exact decimals, one snapshot. A team member
    gets only their own share. `to` must not be before `from`, and a request covers at most
    366 days (422)."""
    exports.check_usage_range(session, principal.account_id, date_from, date_to)
    member = None if sees_account_usage(request, principal, session) else principal.user_id
    return exports.usage_csv(request, principal.account_id, date_from, date_to,
                             frozenset({member}) if member else None)


@router.get("/ledger.csv", response_class=StreamingResponse,
            responses={**_CSV, **error_responses(401, 403)},
            openapi_extra=key_scope(Scope.LEDGER_READ))
def ledger_csv(request: Request, principal: LedgerDep, session: SessionDep) -> Response:
    """Every entry of `GET /v1/account/ledger` as CSV, newest first, exact decimals,
    one snapshot."""
    credits.require_owner(session, principal.account_id)
    return exports.ledger_csv(request, principal.account_id)


@router.get(
    "/stopped-workloads",
    response_model=list[StoppedWorkloadOut],
    responses=error_responses(401, 403),
)
def stopped_workloads(principal: OwnerDep, session: SessionDep) -> list[StoppedWorkloadOut]:
    """The job executions, Jupyter servers and model deployments that suspensions of the
    account stopped, newest first. Nothing restarts by itself after a resumption."""
    return clusters.stopped_workloads(session, principal.account_id)
