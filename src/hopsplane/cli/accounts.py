"""hopsplane accounts / hopsplane admins: find an account, make someone a platform admin."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from hopsplane.accounts import service as accounts
from hopsplane.cli.common import (
    Col,
    JsonOpt,
    console,
    load_settings,
    print_json,
    print_list,
    transaction,
)
from hopsplane.clusters import service as clusters
from hopsplane.credits import service as credits
from hopsplane.credits.rules import standing_words
from hopsplane.payments.autotopup import service as autotopup
from hopsplane.teams import service as teams

app = typer.Typer(
    help="Find accounts by email or id (ids such as auth0|abc need quotes in a shell).",
    no_args_is_help=True,
)
admins = typer.Typer(
    help="Platform admins (they see /admin and the admin API). The user must have signed "
    "in once.",
    no_args_is_help=True,
)

WhoArg = Annotated[str, typer.Argument(help="Email address or user id (quote ids with a |).")]


@app.command()
def find(who: WhoArg, as_json: JsonOpt = False) -> None:
    """Show a user and their account: owner, members, cluster, balance, standing."""
    settings = load_settings()
    with transaction(settings) as session:
        user = accounts.find_user(session, who)
        owner_id = user.account_owner_id or user.id
        owner = user if owner_id == user.id else accounts.get_user(session, owner_id)
        members = teams.list_members(session, owner_id, limit=1000)
        assignment = clusters.assignment(session, owner_id)
        on = clusters.get_cluster(session, assignment.hopsworks_cluster_id) if assignment else None
        standing = credits.standing(session, owner_id)
        topup = autotopup.view(session, owner_id, autotopup.limits_from(settings))
    found: dict[str, Any] = {
        "user": user.model_dump(mode="json"),
        "owner": owner.model_dump(mode="json"),
        "members": [m.model_dump(mode="json") for m in members],
        "cluster": assignment.model_dump(mode="json") if assignment else None,
        "balance": str(standing.balance),
        "suspended": standing.suspended,
        "promotional": str(standing.promotional),
        "promotional_grants": [g.model_dump(mode="json") for g in standing.promotional_grants],
        "auto_topup": topup.model_dump(mode="json", exclude={"terms"}),
    }
    if as_json:
        print_json(found)
        return
    console.print(f"user     {user.id}  {user.email}  ({user.role})", highlight=False)
    console.print(f"owner    {owner.id}  {owner.email}", highlight=False)
    for m in members:
        console.print(f"member   {m.id}  {m.email}", highlight=False)
    where = f"{on.name} ({on.id})" if on else "not assigned to a cluster"
    console.print(f"cluster  {where}", highlight=False)
    low = standing.notice_threshold
    state = standing_words(standing.balance, standing.suspended,
                           str(low) if low is not None and standing.balance <= low else None)
    console.print(f"balance  ${standing.balance}  ({state.short})", highlight=False)
    for g in standing.promotional_grants:
        console.print(f"promo    ${g.amount} expires {g.expires_at.isoformat()}", highlight=False)
    last = topup.last_attempt
    console.print(
        f"auto top-up  {topup.status}"
        + (f" ({topup.paused_reason})" if topup.paused_reason else "")
        + (f"  below {topup.threshold} buy {topup.amount}" if topup.threshold is not None
           else "")
        + f"  today {topup.today_count}x {topup.today_amount}"
        + (f"  last: {last.status} after {last.tries} tries" if last else ""),
        highlight=False,
    )


@admins.command()
def grant(who: WhoArg) -> None:
    """Make a user a platform admin (takes effect at their next request)."""
    with transaction(load_settings()) as session:
        user = accounts.set_platform_admin(session, who, True)
    console.print(f"{user.email} ({user.id}) is a platform admin", highlight=False)


@admins.command()
def revoke(who: WhoArg) -> None:
    """Take platform admin away from a user."""
    with transaction(load_settings()) as session:
        user = accounts.set_platform_admin(session, who, False)
    console.print(f"{user.email} ({user.id}) is no longer a platform admin", highlight=False)


_ADMINS = (
    Col("id", lambda u: u.id, whole=True),
    Col("email", lambda u: u.email, whole=True),
    Col("name", lambda u: u.name),
    Col("last sign-in (UTC)",
        lambda u: u.last_login_at.strftime("%Y-%m-%d %H:%M") if u.last_login_at else None),
)


@admins.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """Every platform admin."""
    with transaction(load_settings()) as session:
        found = accounts.platform_admins(session)
    print_list(found, _ADMINS, as_json=as_json)
