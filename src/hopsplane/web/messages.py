"""What the console says for each error code. Pages match on the stable ``code`` of an
error (never on its English detail, which may change); the detail is shown under it."""

from __future__ import annotations

from hopsplane.errors import AppError

TITLES: dict[str, str] = {
    "invalid": "Please check what you entered",
    "unauthorized": "Please sign in",
    "forbidden": "Not allowed",
    "not_found": "Page not found",
    "conflict": "That cannot be done now",
    "gone": "No longer available",
    "payment_required": "Credit needed",
    "unavailable": "Temporarily unavailable",
    "too_many_requests": "Too many attempts",
    "payload_too_large": "Too large",
    "method_not_allowed": "Not allowed",
    "insufficient_balance": "Not enough credit",
    "refund_exceeds_purchase": "More than the purchase",
    "idempotency_key_reused": "Already done differently",
}
"""The heading of an error page or form message, by code."""


def title_for(exc: AppError) -> str:
    return TITLES.get(exc.code, "Something went wrong")


def message_for(exc: AppError, words: dict[str, str] | None = None) -> str:
    """A refused form's message: the words the page gives that code (``words``, by code:
    what the form asked, in its own terms), else the service's detail written as a
    sentence. Never the page-level heading of the code ("Page not found: ..."): a form's
    message says what to fix, not what kind of error it was."""
    if words and exc.code in words:
        return words[exc.code]
    text = exc.message.strip()
    if not text:
        return title_for(exc) + "."
    text = text[:1].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."
