"""SQL of payments: the webhook event log and the Stripe customer ids of account owners."""

from __future__ import annotations

import json
from typing import Literal

from sqlalchemy import text
from sqlalchemy.orm import Session

from hopsplane.errors import NotFound
from hopsplane.integrations.stripe.types import Mode, WebhookEvent

_INSERT_EVENT = text(
    """
    INSERT INTO hopsplane.stripe_events (id, type, livemode, stripe_created_at, payload)
    VALUES (:id, :type, :livemode, :created, CAST(:payload AS jsonb))
    ON CONFLICT (id) DO NOTHING
    RETURNING id
    """
)

_FINISH_EVENT = text(
    """
    UPDATE hopsplane.stripe_events
    SET status = :status, processed_at = now(), error = :error, object_id = :object_id,
        account_owner_id = :account
    WHERE id = :id
    """
)

# Serialises the handling of one payment (its purchase and refunds) across transactions,
# so two refund events for the same charge never both post the same difference. Taken
# before credits.service.post takes the account lock, always in that order.
_LOCK_PAYMENT = text(
    "SELECT pg_advisory_xact_lock(hashtextextended('stripe:payment:' || :pi, 0))"
)


def insert_event(session: Session, event: WebhookEvent) -> bool:
    """Store the event; False when it was stored before (a repeated delivery)."""
    row = session.execute(
        _INSERT_EVENT,
        {
            "id": event.id,
            "type": event.type,
            "livemode": event.livemode,
            "created": event.created,
            "payload": json.dumps(event.payload),
        },
    ).first()
    return row is not None


def finish_event(
    session: Session,
    event_id: str,
    status: Literal["processed", "ignored", "failed"],
    *,
    object_id: str | None,
    account_id: str | None,
    error: str | None,
) -> None:
    session.execute(
        _FINISH_EVENT,
        {"id": event_id, "status": status, "object_id": object_id,
         "account": account_id, "error": error},
    )


def lock_payment(session: Session, payment_intent_id: str) -> None:
    session.execute(_LOCK_PAYMENT, {"pi": payment_intent_id})


def _column(mode: Mode) -> str:
    return "stripe_customer_id" if mode == "live" else "stripe_test_customer_id"


def hold_owner(session: Session, account_id: str) -> bool:
    """Share-lock the user row (until the transaction ends) and tell whether it still owns
    an account: a join takes the row ``FOR UPDATE``, so a Checkout opening and a join of
    the same person run one after the other, never side by side."""
    owner = session.execute(
        text("SELECT account_owner_id IS NULL FROM users WHERE id = :id FOR SHARE"),
        {"id": account_id},
    ).scalar_one_or_none()
    if owner is None:
        raise NotFound(f"no account {account_id!r}")
    return bool(owner)


def customer_of(session: Session, account_id: str, mode: Mode) -> tuple[str, str | None]:
    """(email, customer id of this mode or None) of a user."""
    row = session.execute(
        text(f"SELECT email, {_column(mode)} FROM users WHERE id = :id"), {"id": account_id}
    ).one_or_none()
    if row is None:
        raise NotFound(f"no account {account_id!r}")
    return str(row[0]), row[1]


def set_customer(session: Session, account_id: str, mode: Mode, customer_id: str) -> str:
    """Record the customer unless another request recorded one first; the stored id wins."""
    column = _column(mode)
    stored = session.execute(
        text(
            f"UPDATE users SET {column} = :cid WHERE id = :id AND {column} IS NULL "
            f"RETURNING {column}"
        ),
        {"id": account_id, "cid": customer_id},
    ).scalar_one_or_none()
    if stored is not None:
        return str(stored)
    return str(
        session.execute(
            text(f"SELECT {column} FROM users WHERE id = :id"), {"id": account_id}
        ).scalar_one()
    )


# --- receipts: hopsplane.purchase_receipts -----------------------------------------------

_UPSERT_RECEIPT = text(
    """
    INSERT INTO hopsplane.purchase_receipts AS r (
        payment_intent_id, account_owner_id, invoice_id, receipt_url, pdf_url)
    VALUES (:pi, :account, :invoice, :url, :pdf)
    ON CONFLICT (payment_intent_id) DO UPDATE
    SET invoice_id = COALESCE(r.invoice_id, excluded.invoice_id),
        receipt_url = COALESCE(r.receipt_url, excluded.receipt_url),
        pdf_url = COALESCE(r.pdf_url, excluded.pdf_url),
        updated_at = now()
    WHERE r.receipt_url IS NULL
    """
)


def upsert_receipt(
    session: Session, payment_intent_id: str, account_id: str, *,
    invoice_id: str | None, receipt_url: str | None, pdf_url: str | None,
) -> None:
    """Record what is known of a purchase's receipt; a link once stored is kept (a repeat
    or a late delivery changes nothing)."""
    session.execute(_UPSERT_RECEIPT, {
        "pi": payment_intent_id, "account": account_id, "invoice": invoice_id,
        "url": receipt_url, "pdf": pdf_url,
    })


def receipts_of(
    session: Session, account_id: str, payment_intent_ids: list[str]
) -> dict[str, tuple[str | None, str | None]]:
    """(receipt link, PDF link) of the account's purchases among ``payment_intent_ids``
    that have a link."""
    rows = session.execute(
        text(
            "SELECT payment_intent_id, receipt_url, pdf_url FROM hopsplane.purchase_receipts "
            "WHERE account_owner_id = :a AND payment_intent_id = ANY(CAST(:pis AS text[])) "
            "AND receipt_url IS NOT NULL"
        ),
        {"a": account_id, "pis": payment_intent_ids},
    )
    return {r[0]: (r[1], r[2]) for r in rows}


def receipt_rows(
    session: Session, payment_intent_ids: list[str]
) -> dict[str, tuple[str | None, str | None]]:
    """(invoice id, receipt link) of the receipt rows of these purchases."""
    rows = session.execute(
        text(
            "SELECT payment_intent_id, invoice_id, receipt_url "
            "FROM hopsplane.purchase_receipts "
            "WHERE payment_intent_id = ANY(CAST(:pis AS text[]))"
        ),
        {"pis": payment_intent_ids},
    )
    return {r[0]: (r[1], r[2]) for r in rows}
