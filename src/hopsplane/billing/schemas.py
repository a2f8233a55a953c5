"""Data shapes of billing, shared by the job, the API and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from hopsplane.money import PositiveAmount


@dataclass(frozen=True, slots=True)
class PendingCharge:
    """A usage_tracking row with part of its total_cost not yet charged."""

    id: object  # uuid of the usage row
    account_owner_id: str
    date: date
    compute_units: Decimal
    total_cost: Decimal
    billed_amount: Decimal

    @property
    def due(self) -> Decimal:
        return self.total_cost - self.billed_amount


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    accounts: int
    rows: int
    postings: int
    amount: Decimal
    suspended: int = 0  # accounts suspended by this batch (announced through the hooks)
    notices: int = 0  # low-balance and recovery notices queued by this batch
    more: tuple[str, ...] = ()  # accounts with usage left beyond this slice


@dataclass(frozen=True, slots=True)
class AccountFailure:
    account_owner_id: str
    error: str


@dataclass(slots=True)
class RunReport:
    through: date
    accounts: int = 0
    rows: int = 0
    postings: int = 0
    amount: Decimal = Decimal("0.00")
    failures: list[AccountFailure] = field(default_factory=list)
    notices: int = 0  # balance notices queued (each a job the worker sends)
    suspended: int = 0
    budget_stops: int = 0  # members stopped by their budget
    budget_restores: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures


class UsageDay(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    date: date
    compute_units: Decimal
    unit_price: Decimal
    total_cost: Decimal
    billed_amount: Decimal
    user_breakdown: dict[str, Decimal]


class UsageReport(BaseModel):
    account_owner_id: str
    date_from: date
    date_to: date
    scope: str  # "account" (owner, admin) or "member" (only the caller's share)
    days: list[UsageDay]
    total_units: Decimal
    total_cost: Decimal


class PriceOverrideOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    account_owner_id: str
    effective_from: date
    unit_price: Decimal
    reason: str
    set_by: str | None
    created_at: datetime


# --- member budgets ----------------------------------------------------------------------


class BudgetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    monthly_budget: PositiveAmount = Field(
        description="The member's budget per UTC calendar month, in the account's currency "
        "(a decimal string such as \"50.00\"; at least 0.01)."
    )
    enforce: bool = Field(
        False, description="Deactivate the member's Hopsworks user once they have spent the "
        "budget this month (until the next month, a higher budget, or enforcement off).",
    )


class MemberBudgetOut(BaseModel):
    member_id: str
    email: str
    name: str | None
    monthly_budget: Decimal
    enforce: bool
    month: date = Field(description="The calendar month (its first day) `spent` covers.")
    spent: Decimal = Field(description="The member's priced usage this month, the same "
                           "share the usage pages show.")
    percent: int = Field(description="`spent` as a whole percentage of the budget, floored.")
    stopped: bool = Field(description="Their Hopsworks user is deactivated by this budget.")


@dataclass(frozen=True, slots=True)
class BudgetRow:
    member_id: str
    account_owner_id: str
    monthly_budget: Decimal
    enforce: bool
    stopped_month: date | None
    still_member: bool
    email: str | None
    name: str | None
    noticed_month: date | None = None  # the highest threshold announced (month, amount)
    noticed_budget: Decimal | None = None
    noticed_percent: int | None = None


@dataclass(frozen=True, slots=True)
class BudgetOutcome:
    notices: int = 0  # budget notices queued (each a job the worker sends)
    stopped: tuple[str, ...] = ()
    restored: tuple[str, ...] = ()
