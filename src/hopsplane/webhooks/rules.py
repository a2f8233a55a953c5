"""Rules of outbound webhooks: pure, no I/O."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal, get_args

from standardwebhooks.webhooks import Webhook

from hopsplane.errors import Invalid

# The types an endpoint may subscribe to (the account events of hopsplane.notices; an auto
# top-up event is typed by what happened). ``webhook_disabled`` is told by email only.
EventType = Literal[
    "low_balance", "recovered", "suspended", "resumed", "credits_expiring",
    "budget_reached", "auto_topup.succeeded", "auto_topup.failed", "auto_topup.paused",
    "auto_topup.action_required", "dispute_opened", "dispute_won", "topup_succeeded",
    "member_joined", "member_left",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
MAX_ENDPOINTS = 10  # per account
MAX_DESCRIPTION = 200
ROTATION_OVERLAP = timedelta(hours=24)  # the previous secret still signs for this long
RETRY_WINDOW = timedelta(days=3)  # a delivery is retried (queue backoff) for this long
DELIVER_ATTEMPTS = 100  # what revision 0027 gives a delivery job: the hourly cap fills the window
SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
USER_AGENT = "hopsplane-webhooks/1"


def event_types(wanted: Sequence[str]) -> list[str]:
    """The subscribed types, deduplicated and sorted; Invalid names what is unknown."""
    if not wanted:
        raise Invalid("subscribe to at least one event type: " + ", ".join(EVENT_TYPES))
    unknown = sorted(set(wanted) - set(EVENT_TYPES))
    if unknown:
        raise Invalid(f"unknown event type(s) {', '.join(unknown)}; known: "
                      + ", ".join(EVENT_TYPES))
    return sorted(set(wanted))


def description(text: str) -> str:
    cleaned = " ".join(text.split())
    if len(cleaned) > MAX_DESCRIPTION or not cleaned.isprintable():
        raise Invalid(f"the description must be printable text of at most "
                      f"{MAX_DESCRIPTION} characters")
    return cleaned


def new_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signing_secrets(current: str, previous: str | None, previous_until: datetime | None,
                    now: datetime) -> list[str]:
    """The secrets that sign now: the current one, and during a rotation's overlap the
    previous one too (a consumer that has not switched yet still verifies)."""
    if previous is not None and previous_until is not None and now < previous_until:
        return [current, previous]
    return [current]


def headers(message_id: str, at: datetime, body: str, keys: list[str]) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt: its id, its time, and one ``v1``
    signature per signing secret (space-separated, as the specification allows)."""
    signatures = " ".join(Webhook(k).sign(message_id, at, body) for k in keys)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
    }


def succeeded(status: int) -> bool:
    return 200 <= status < 300


def window_over(created_at: datetime, now: datetime) -> bool:
    return now - created_at >= RETRY_WINDOW
