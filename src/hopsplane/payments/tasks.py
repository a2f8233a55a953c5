"""The payments domain's jobs: auto top-up charges (their notices are account events,
``hopsplane.notices``).

``payments.auto_topup_charge`` decides a try under the account's auto top-up lock in one
short transaction, calls Stripe with no transaction open (so nothing waits on Stripe), and
records the answer in another. Stripe unreachable raises: the job is retried by the queue
with the same try, hence the same Stripe idempotency key, and nothing is credited until
Stripe says a payment succeeded. Needs the worker's ``settings``, ``database``, ``stripe``
and ``hooks`` services.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from hopsplane.credits.schemas import BalancePolicy
from hopsplane.errors import Unavailable
from hopsplane.integrations.stripe.types import OffSessionCharge, StripeGateway
from hopsplane.payments import rules as payment_rules
from hopsplane.payments.autotopup import service as autotopup
from hopsplane.payments.autotopup.rules import charge_key
from hopsplane.worker.schemas import JobContext, Task


def _gateway(ctx: JobContext) -> StripeGateway:
    gateway = ctx.services.stripe
    if gateway is None:
        raise Unavailable("Stripe is not configured (HOPSPLANE_STRIPE_SECRET_KEY)")
    return gateway


def run_charge(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    settings, database = ctx.services.settings, ctx.services.database
    gateway = _gateway(ctx)
    limits = autotopup.limits_from(settings)
    attempt_id = uuid.UUID(str(args["attempt_id"]))
    with database.transaction() as s:
        plan = autotopup.begin_charge(s, gateway, limits, attempt_id)
    if plan is None:
        return
    outcome = gateway.charge_off_session(OffSessionCharge(
        customer_id=plan.customer_id,
        payment_method_id=plan.payment_method_id,
        amount_minor=payment_rules.to_minor(plan.amount, plan.currency),
        currency=plan.currency,
        metadata=autotopup.charge_metadata(plan),
        idempotency_key=charge_key(str(plan.attempt_id), plan.try_no),
    ))
    with database.transaction() as s:
        autotopup.record_outcome(
            s, limits, plan, outcome, BalancePolicy(ctx.services.hooks, settings.thresholds)
        )


def run_failed(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    """Count a failure Stripe reported by webhook for a processing auto top-up."""
    autotopup.payment_failed(
        session, autotopup.limits_from(ctx.services.settings), str(args["attempt_id"]),
        str(args["payment_intent"]), str(args["why"]),
    )


TASKS: tuple[Task, ...] = (
    Task(autotopup.CHARGE_TASK, run_charge),
    Task(autotopup.FAILED_TASK, run_failed),
)
