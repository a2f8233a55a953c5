"""Receipts of top-ups: the link to Stripe's receipt next to each purchase.

Top-ups are Checkout Sessions created with ``invoice_creation[enabled]=true``: once paid,
Stripe makes a paid invoice for the payment, named by the session's ``invoice`` field, whose
``hosted_invoice_url`` is the receipt page and ``invoice_pdf`` its PDF (Stripe API
reference: Checkout Session ``invoice_creation`` and ``invoice``; the Invoice object's
``hosted_invoice_url`` and ``invoice_pdf``, null until the invoice is finalized). A
purchase credited without a session (``stripe reconcile --fix``) or made before invoices
were created has no invoice: its receipt is the charge's ``receipt_url`` (the Charge
object), fetched by :func:`backfill`.

Fetching a link never stands in the way of crediting: when Stripe cannot be read while a
payment is credited, the invoice id is kept and the backfill fetches the link later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from sqlalchemy.orm import Session

from hopsplane.credits import service as credits
from hopsplane.credits.schemas import LedgerEntryOut
from hopsplane.errors import NotFound, Unavailable
from hopsplane.integrations.stripe.types import CheckoutSession, StripeGateway
from hopsplane.payments import repository as repo
from hopsplane.payments.schemas import LedgerEntryWithReceipt, Payment

log = structlog.get_logger(__name__)


def record_from_checkout(
    session: Session, gateway: StripeGateway, checkout: CheckoutSession, payment: Payment
) -> None:
    """After a Checkout payment is credited: store its invoice and, when Stripe answers,
    the invoice's links. Idempotent (a link once stored stays)."""
    if not checkout.invoice_id:
        return
    url = pdf = None
    try:
        invoice = gateway.retrieve_invoice(checkout.invoice_id)
        url, pdf = _https(invoice.hosted_invoice_url), _https(invoice.invoice_pdf)
    except (Unavailable, NotFound) as exc:
        log.warning("receipt link not fetched; stripe reconcile fetches it later",
                    invoice=checkout.invoice_id, error=exc.message)
    repo.upsert_receipt(session, payment.payment_intent_id, payment.account_owner_id,
                        invoice_id=checkout.invoice_id, receipt_url=url, pdf_url=pdf)


def with_receipts(
    session: Session, account_id: str, entries: Sequence[LedgerEntryOut]
) -> list[LedgerEntryWithReceipt]:
    """Ledger entries with the receipt link of each purchase that has one (None for the
    others, and for purchases from before receipts were kept until the backfill ran)."""
    pis = [e.stripe_payment_intent_id for e in entries
           if e.stripe_payment_intent_id and e.amount > 0]
    links = repo.receipts_of(session, account_id, pis) if pis else {}
    out = []
    for e in entries:
        url, pdf = links.get(e.stripe_payment_intent_id or "", (None, None)) \
            if e.amount > 0 else (None, None)
        out.append(LedgerEntryWithReceipt(**e.model_dump(), receipt_url=url, receipt_pdf_url=pdf))
    return out


@dataclass(slots=True)
class BackfillReport:
    checked: int = 0
    filled: int = 0
    missing: int = 0  # Stripe has no link for them (yet)


def backfill(session: Session, gateway: StripeGateway, *, limit: int = 1000) -> BackfillReport:
    """Fetch the receipt links of Stripe purchases that have none, oldest first, at most
    ``limit`` per call: the invoice's links when the purchase has an invoice, else the
    charge's ``receipt_url``. Stripe being unavailable stops the call (Unavailable)."""
    report = BackfillReport()
    purchases = [e for e in credits.stripe_purchases(session) if e.stripe_payment_intent_id]
    rows = repo.receipt_rows(session, [str(e.stripe_payment_intent_id) for e in purchases])
    for entry in purchases:
        pi = str(entry.stripe_payment_intent_id)
        invoice_id, url = rows.get(pi, (None, None))
        if url is not None:
            continue
        if report.checked >= limit:
            break
        report.checked += 1
        try:
            url, pdf = _links_of(gateway, pi, invoice_id)
        except NotFound:
            url = pdf = None
        if url is None:
            report.missing += 1
            continue
        repo.upsert_receipt(session, pi, entry.account_owner_id, invoice_id=invoice_id,
                            receipt_url=url, pdf_url=pdf)
        report.filled += 1
    return report


def _links_of(
    gateway: StripeGateway, pi: str, invoice_id: str | None
) -> tuple[str | None, str | None]:
    if invoice_id:
        invoice = gateway.retrieve_invoice(invoice_id)
        if invoice.hosted_invoice_url:
            return _https(invoice.hosted_invoice_url), _https(invoice.invoice_pdf)
    intent = gateway.retrieve_payment_intent(pi)
    if not intent.latest_charge_id:
        return None, None
    return _https(gateway.retrieve_charge(intent.latest_charge_id).receipt_url), None


def _https(url: str | None) -> str | None:
    """Only https links are shown (the table refuses others): Stripe's are https."""
    return url if url and url.startswith("https://") else None
