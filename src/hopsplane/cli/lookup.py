"""What an operator has at hand, turned into what the services take: an account by its
owner's email or id, a cluster by its name or id."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.orm import Session

from hopsplane.accounts import service as accounts
from hopsplane.accounts.schemas import UserSummary
from hopsplane.cli.common import err_console
from hopsplane.clusters import service as clusters
from hopsplane.clusters.schemas import ClusterOut
from hopsplane.errors import Invalid, NotFound

AccountArg = Annotated[str, typer.Argument(
    metavar="ACCOUNT",
    help="The account: its owner's email or user id (quote ids with a |, as in 'auth0|abc').")]
ClusterArg = Annotated[str, typer.Argument(
    metavar="CLUSTER", help="Cluster name or id (`hopsplane clusters list` shows both).")]


def account(session: Session, who: str, *, for_change: bool) -> UserSummary:
    """The owner of the account ``who`` names (an email or a user id). A member's address
    reads their owner's account, with a note saying so; a change (credit, price,
    cluster) refuses it and names the owner, so that nobody credits an account they did
    not mean."""
    try:
        user = accounts.find_user(session, who)
    except NotFound:
        raise NotFound(f"no account {who.strip()!r}: no user has that email or id (a user "
                       "exists after signing in once)") from None
    if user.account_owner_id is None:
        return user
    owner = accounts.get_user(session, user.account_owner_id)
    if for_change:
        raise Invalid(
            f"{user.email} is a team member in the account of {owner.email} ({owner.id}); "
            f"accounts are named by their owner: give {owner.email} instead"
        )
    err_console.print(f"{user.email} is a team member: showing the account of its owner "
                      f"{owner.email} ({owner.id})", style="dim", highlight=False)
    return owner


def cluster(session: Session, name_or_id: str) -> ClusterOut:
    return clusters.find_cluster(session, name_or_id)


def account_label(user: UserSummary) -> str:
    return f"{user.email} ({user.id})"
