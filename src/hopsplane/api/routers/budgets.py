"""/v1/account/budgets: the owner's monthly budgets for members of their team.

What a budget enforces, and when, is written in :mod:`hopsplane.billing.budgets`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from hopsplane.api.errors import error_responses
from hopsplane.billing import budgets
from hopsplane.billing.schemas import BudgetIn, MemberBudgetOut
from hopsplane.fields import Identifier
from hopsplane.http.deps import OwnerDep, SessionDep
from hopsplane.http.state import account_hooks

router = APIRouter(prefix="/v1/account/budgets", tags=["budgets"])

MemberId = Annotated[Identifier, Path(description="The member's user id.")]


@router.get("", response_model=list[MemberBudgetOut], responses=error_responses(401, 403))
def list_budgets(principal: OwnerDep, session: SessionDep) -> list[MemberBudgetOut]:
    """The budgets of your team's members, with what each spent this month (UTC)."""
    return budgets.budgets_of(session, principal.account_id)


@router.put(
    "/{member_id}", response_model=MemberBudgetOut,
    responses=error_responses(401, 403, 404, 422),
)
def set_budget(
    request: Request, principal: OwnerDep, session: SessionDep, member_id: MemberId,
    body: BudgetIn,
) -> MemberBudgetOut:
    """Set a member's monthly budget (and whether it is enforced). It is evaluated at once:
    a member over an enforced budget is stopped, one under it again is reactivated."""
    return budgets.set_budget(
        session, principal.account_id, member_id, body.monthly_budget, enforce=body.enforce,
        hooks=account_hooks(request), set_by=principal.user_id,
    )


@router.delete("/{member_id}", status_code=204, responses=error_responses(401, 403, 404, 422))
def remove_budget(
    request: Request, principal: OwnerDep, session: SessionDep, member_id: MemberId
) -> Response:
    """Remove a member's budget; a member it stopped is reactivated."""
    budgets.remove_budget(session, principal.account_id, member_id,
                          hooks=account_hooks(request))
    return Response(status_code=204)
