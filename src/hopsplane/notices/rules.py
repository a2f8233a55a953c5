"""What each kind of account event tells whom by email: pure, no I/O. The wording is the
one the outboxes used (balance, budget, expiry) and the auto top-up job used."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from urllib.parse import urlsplit

from hopsplane.integrations.email import Email
from hopsplane.integrations.email.templates import render
from hopsplane.notices.schemas import AccountEvent, Person

# Kinds nobody is emailed about: a suspension is told by the low-balance notice at $0,
# a resumption needs no email (the recovery notice follows a top-up above the thresholds),
# a top-up shows its receipt on the success page, people see their team.
SILENT = frozenset({"suspended", "resumed", "topup_succeeded", "member_joined",
                    "member_left"})  # (the last three are for webhooks)

AUTO_TOPUP_SUBJECTS = {
    "succeeded": "hopsplane: auto top-up of {amount} {currency} succeeded",
    "failed": "hopsplane: auto top-up of {amount} {currency} failed, we will retry",
    "paused": "hopsplane: auto top-up is paused",
    "action_required": "hopsplane: confirm your auto top-up of {amount} {currency}",
}


def recipients(event: AccountEvent) -> list[str]:
    """The users whose email a notice of ``event`` needs (none for a silent kind)."""
    if event.kind in SILENT:
        return []
    if event.kind == "budget_reached":
        return [event.account_id, str(event.payload["member_id"])]
    return [event.account_id]


def message_id(event: AccountEvent, to: str) -> str:
    """A Message-ID that is the same every time this event is told to this address: a
    notice sent again after a crash between the send and the job's commit carries the
    same id, which lets mail systems and readers recognise the repeat."""
    digest = hashlib.sha256(f"{event.key}\x00{to}".encode()).hexdigest()[:32]
    return f"<notice-{digest}@hopsplane>"


def emails_for(
    event: AccountEvent, people: dict[str, Person], *, public_url: str = "",
    currency: str = "USD",
) -> list[Email]:
    """The emails of one event; a recipient who is gone (not in ``people``) gets none."""
    base = public_url.rstrip("/")
    owner = people.get(event.account_id)
    p = event.payload
    messages: list[Email] = []
    if event.kind in SILENT:
        return []
    if event.kind == "budget_reached":
        member = people.get(str(p["member_id"]))
        if member is None:
            return []
        for recipient in p.get("recipients") or ("owner", "member"):
            if recipient == "owner" and owner is None:
                continue
            messages.append(_budget(p, member, owner, recipient == "owner", base))
    elif owner is not None:
        messages.append(_account_notice(event, owner.email, base, currency))
    return [replace(m, message_id=message_id(event, m.to)) for m in messages]


def _account_notice(event: AccountEvent, to: str, base: str, currency: str) -> Email:
    p = event.payload
    console = f"{base}/console" if base else None
    if event.kind == "credits_expiring":
        when = _when(p["expires_at"])
        return render(
            "credits_expiring", to=to,
            subject=f"hopsplane: ${p['amount']} of promotional credit expires on {when[:10]}",
            amount=p["amount"], expires_at=when, balance=p["balance"], link=console,
        )
    if event.kind == "recovered":
        threshold = p["threshold"]
        return render("balance_recovered", to=to,
                      subject=f"hopsplane: your balance is back above ${threshold}",
                      balance=Decimal(p["balance"]), threshold=threshold, link=console)
    if event.kind == "low_balance":
        threshold, balance = p["threshold"], Decimal(p["balance"])
        suspended = balance <= 0
        subject = ("hopsplane: your account is suspended, add credit to resume" if suspended
                   else f"hopsplane: your balance is at or below ${threshold}")
        return render("low_balance", to=to, subject=subject, balance=balance,
                      threshold=threshold, suspended=suspended, link=console)
    if event.kind == "auto_topup":
        kind = str(p["event"])
        return render(
            "auto_topup", to=to,
            subject=AUTO_TOPUP_SUBJECTS[kind].format(amount=p["amount"], currency=currency),
            kind=kind, amount=p["amount"], currency=currency, detail=p.get("detail"),
            link=f"{base}/console/auto-topup" if base else None,
        )
    if event.kind == "webhook_disabled":
        return render("webhook_disabled", to=to,
                      subject="hopsplane: a webhook endpoint kept failing and was disabled",
                      host=urlsplit(str(p["url"])).hostname or "?", error=p.get("error"),
                      link=f"{base}/console/webhooks" if base else None)
    if event.kind in ("dispute_opened", "dispute_won"):
        opened = event.kind == "dispute_opened"
        subject = (f"hopsplane: a payment of ${p['amount']} is disputed" if opened
                   else f"hopsplane: the dispute of ${p['amount']} was won, credit restored")
        return render("dispute", to=to, subject=subject, opened=opened, amount=p["amount"],
                      dispute_id=p["dispute_id"], link=console)
    raise ValueError(f"no email for an event of kind {event.kind!r}")


def _budget(p: dict[str, object], member: Person, owner: Person | None, to_owner: bool,
            base: str) -> Email:
    """The 80 % / 100 % email, to the owner (about the member) or to the member. Links go
    to the console page where each can act: the owner's team page (budgets), the
    member's usage page."""
    who = f"{member.name} ({member.email})" if member.name else member.email
    month = date.fromisoformat(str(p["month"]))
    page = "/console/team" if to_owner else "/console/usage"
    percent = int(str(p["percent"]))
    subject = (f"hopsplane: {who} has used {percent}% of their monthly budget" if to_owner
               else f"hopsplane: you have used {percent}% of your monthly budget")
    assert owner is not None or not to_owner
    return render(
        "member_budget", to=owner.email if to_owner and owner else member.email,
        subject=subject, to_owner=to_owner, who=who, percent=percent,
        spent=Decimal(str(p["spend"])), budget=Decimal(str(p["budget"])),
        month=month.strftime("%B %Y"), enforce=bool(p.get("enforce")),
        link=f"{base}{page}" if base else None,
    )


def _when(value: object) -> str:
    """An instant as the expiry email states it."""
    try:
        at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
