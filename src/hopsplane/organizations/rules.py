"""Roles of an organization and what each delegates (pure rules, no I/O)."""

from __future__ import annotations

from enum import StrEnum

from hopsplane.errors import Invalid

MAX_NAME = 100


class OrgRole(StrEnum):
    ADMIN = "admin"  # manage invites and members, see usage and ledger, buy credits
    BILLING = "billing"  # see ledger and receipts, buy credits
    MEMBER = "member"  # grouping only


class Capability(StrEnum):
    TEAM = "team"  # invites and members of the account
    LEDGER = "ledger"  # ledger, receipts, balance
    BUY = "buy"  # buy credits
    USAGE = "usage"  # the whole account's usage
    WEBHOOKS = "webhooks"  # the account's webhook endpoints and their deliveries


GRANTS: dict[OrgRole, frozenset[Capability]] = {
    OrgRole.ADMIN: frozenset(Capability),
    OrgRole.BILLING: frozenset({Capability.LEDGER, Capability.BUY}),
    OrgRole.MEMBER: frozenset(),
}


def capabilities(roles: set[OrgRole]) -> frozenset[Capability]:
    out: frozenset[Capability] = frozenset()
    for role in roles:
        out |= GRANTS[role]
    return out


def clean_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise Invalid("give the organization a name")
    if len(cleaned) > MAX_NAME or not cleaned.isprintable():
        raise Invalid(f"an organization's name is at most {MAX_NAME} printable characters")
    return cleaned


def parse_role(role: str) -> OrgRole:
    try:
        return OrgRole(role.strip().lower())
    except ValueError as exc:
        raise Invalid("role must be admin, billing or member") from exc
