"""What a customer reads of their ledger: each entry's kind and description in plain words,
with names, dates and currency, never an internal id (a user id, a purchase's UUID, a
Stripe object id, a grant id). The console's ledger, its home page and the ledger CSV a
customer downloads all say it this way; operators keep the stored text (``hopsplane
credits history``, the admin API).

The stored descriptions are append-only history written by a few known places
(:mod:`hopsplane.credits.service`, :mod:`hopsplane.billing.rules`,
:mod:`hopsplane.payments`, the legacy cleanup), so they are read back by their shape; an
entry whose text has no known shape is described by its type alone, so an unknown shape
can never leak an id."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation

from hopsplane.credits.rules import EntryType
from hopsplane.money import display
from hopsplane.usage.rules import UNITS_PER_CPU_HOUR

KINDS: dict[str, str] = {
    EntryType.PURCHASE: "Purchase",
    EntryType.GRANT: "Credit granted",
    EntryType.REFUND: "Refund",
    EntryType.USAGE: "Compute",
    EntryType.EXPIRY: "Expired credit",
    EntryType.DISPUTE: "Disputed payment",
    EntryType.DISPUTE_REVERSAL: "Dispute won",
}
"""The plain name of each entry type (the ledger's "Type" column)."""

_USAGE = re.compile(
    r"^usage (\d{4}-\d{2}-\d{2})( \(late\))?: ([0-9.]+) units, ([0-9.]+)"
    r"(?: of which ([0-9.]+) was charged before)?$")
_GRANT = re.compile(r"^grant: (.*?)(?: \(by ([^()]*)\))?$", re.S)
_ADMIN_REFUND = re.compile(r"^refund of [0-9a-f-]{36}: (.*?)(?: \(by ([^()]*)\))?$", re.S)
_LEGACY = {
    "legacy balance: total purchased": "Credits bought before this console existed",
    "legacy balance: free credits": "Free credits given before this console existed",
    "legacy balance: total used": "Compute used before this console existed",
}
OPERATORS = {"cli"}
"""``granted_by`` values that are not a person: the command line of the operators."""


def kind(entry_type: str) -> str:
    return KINDS.get(entry_type, str(entry_type).replace("_", " ").capitalize())


def day_text(day: date) -> str:
    """``7 Dec 2026``: a day as people write it, the same in every locale's reading."""
    return f"{day.day} {day.strftime('%b %Y')}"


def cpu_hours_text(units: Decimal) -> str:
    hours = units / UNITS_PER_CPU_HOUR
    text = f"{hours:,.2f}" if hours < 10 else f"{hours:,.1f}"
    return f"{text} CPU-hour{'' if text == '1.00' else 's'}"


def _by(who: str | None) -> str:
    if not who:
        return "Support"
    return "the operators" if who.strip() in OPERATORS else "Support"


def describe(entry_type: str, description: str | None, currency: str) -> str:
    """The entry in plain words (see the module's docstring)."""
    text = (description or "").strip()
    if text in _LEGACY:
        return _LEGACY[text]
    if entry_type == EntryType.USAGE and (m := _USAGE.match(text)):
        try:
            day = date.fromisoformat(m.group(1))
            units, cost = Decimal(m.group(3)), Decimal(m.group(4))
            before = Decimal(m.group(5)) if m.group(5) else None
        except (ValueError, InvalidOperation):
            return "Compute used"
        late = ", reported late" if m.group(2) else ""
        out = (f"Compute on {day_text(day)}{late}: {cpu_hours_text(units)}, "
               f"{display(cost, currency)}")
        if before is not None:
            out += f", of which {display(before, currency)} was charged before"
        return out
    if entry_type == EntryType.USAGE:
        return "Compute used"
    if entry_type == EntryType.GRANT and (m := _GRANT.match(text)):
        reason = m.group(1).strip()
        return f"Credit granted by {_by(m.group(2))}" + (f": {reason}" if reason else "")
    if entry_type == EntryType.GRANT:
        return "Credit granted"
    if entry_type == EntryType.PURCHASE:
        if "whose owner has joined this one" in text:
            return "Credits bought by card, paid from your earlier account"
        return "Credits bought by card"
    if entry_type == EntryType.REFUND:
        if m := _ADMIN_REFUND.match(text):
            reason = m.group(1).strip()
            return f"Refund of a card payment by {_by(m.group(2))}" + (
                f": {reason}" if reason else "")
        return "Card payment refunded"
    if entry_type == EntryType.EXPIRY:
        return "Promotional credit expired: what was left of it is removed"
    if entry_type == EntryType.DISPUTE:
        return "Card payment disputed with your bank: its credits are taken back"
    if entry_type == EntryType.DISPUTE_REVERSAL:
        return "Dispute closed in your favour: the credits are back"
    return kind(entry_type)
