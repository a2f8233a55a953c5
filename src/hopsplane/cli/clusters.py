"""hopsplane clusters: register Hopsworks clusters and place accounts on them."""

from __future__ import annotations

import getpass
import logging
import shlex
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, SecretStr, ValidationError
from rich.markup import escape

from hopsplane.cli import lookup
from hopsplane.cli.common import (
    Col,
    JsonOpt,
    console,
    debugging,
    encryption_box_keys,
    friendly,
    load_settings,
    print_list,
    transaction,
)
from hopsplane.clusters import service
from hopsplane.clusters.rules import ClusterStatus
from hopsplane.clusters.schemas import ClusterCreate, ClusterOut, ClusterUpdate
from hopsplane.crypto import SecretBox
from hopsplane.errors import AppError, Invalid
from hopsplane.integrations.hopsworks import JWT_SINCE, HopsworksClient
from hopsplane.integrations.prometheus import build_prometheus_client

M = TypeVar("M", bound=BaseModel)

app = typer.Typer(
    help="Hopsworks clusters: register, update, drain, disable, and assign accounts. "
    "API keys and kubeconfigs are stored encrypted (HOPSPLANE_ENCRYPTION_KEYS) and never shown.",
    no_args_is_help=True,
)

ClusterArg = lookup.ClusterArg
ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        envvar="HOPSPLANE_CLUSTER_API_KEY",
        show_envvar=True,
        help="Admin API key of a HOPS_ADMIN user (scopes ADMIN, ADMINISTER_USERS, PROJECT). "
        "Prompted for when omitted on add.",
    ),
]
AuthApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        envvar="HOPSPLANE_CLUSTER_AUTH_API_KEY",
        show_envvar=True,
        help="A second API key of a HOPS_ADMIN user with only the AUTH scope (signs tokens of "
        "project owners: it can act as any user). Prompted for when omitted on add; prefer "
        "the prompt or the environment variable to the command line.",
    ),
]
ServicesOpt = Annotated[
    str | None,
    typer.Option(
        help="Services of new projects, comma-separated ProjectServiceEnum names "
        "(default: JOBS,KAFKA,JUPYTER,HIVE,SERVING,FEATURESTORE,AIRFLOW)."
    ),
]
KubeconfigOpt = Annotated[
    Path | None,
    typer.Option(exists=True, dir_okay=False, readable=True, help="Path of a kubeconfig file."),
]

CaBundleOpt = Annotated[
    Path | None,
    typer.Option(exists=True, dir_okay=False, readable=True,
                 help="PEM file of the CA(s) that signed the Hopsworks API's certificate "
                 "(default: the system's trust store)."),
]
PromCaBundleOpt = Annotated[
    Path | None,
    typer.Option(exists=True, dir_okay=False, readable=True,
                 help="PEM file of the CA(s) that signed Prometheus' certificate."),
]
PromTokenOpt = Annotated[
    str | None,
    typer.Option(envvar="HOPSPLANE_PROMETHEUS_BEARER_TOKEN", show_envvar=True,
                 help="Bearer token for Prometheus (stored encrypted; '' removes the "
                 "Prometheus credentials on update)."),
]
PromUserOpt = Annotated[
    str | None, typer.Option(help="Basic-auth user for Prometheus (the password is prompted "
                             "for unless HOPSPLANE_PROMETHEUS_PASSWORD is set).")]


def _pem(path: Path | None, remove: bool = False) -> str | None:
    if remove:
        return ""
    return path.read_text() if path else None


def _prometheus_password(user: str | None) -> SecretStr | None:
    if not user:
        return None
    import os

    given = os.environ.get("HOPSPLANE_PROMETHEUS_PASSWORD")
    return SecretStr(given or typer.prompt("Prometheus password", hide_input=True))


_COLUMNS = (
    Col("id", lambda c: c.id, whole=True),  # what assign, update, drain and check take
    Col("name", lambda c: c.name),
    Col("status", lambda c: c.status),
    Col("accounts", lambda c: f"{c.current_users}/{c.max_users}"),
    Col("free", lambda c: c.free_capacity),
    Col("api url", lambda c: c.api_url),
    Col("prometheus", lambda c: c.prometheus_url),
    Col("auth key", lambda c: "set" if c.has_auth_api_key else "MISSING"),
    Col("operator error", lambda c: c.operator_error),
)


def _show(clusters: list[ClusterOut], as_json: bool = False) -> None:
    print_list(clusters, _COLUMNS, as_json=as_json)


def _services(value: str | None) -> list[str] | None:
    return None if value is None else [v for v in value.split(",") if v.strip()]


def _parse(model: type[M], **values: Any) -> M:
    try:
        return model(**values)
    except ValidationError as exc:
        raise Invalid(
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        ) from None


@app.command()
@friendly
def add(
    name: Annotated[str, typer.Argument(help="A name operators recognise.")],
    api_url: Annotated[str, typer.Option(help="Base URL, e.g. https://hopsworks.example.com")],
    api_key: ApiKeyOpt = None,
    auth_api_key: AuthApiKeyOpt = None,
    max_users: Annotated[int, typer.Option(help="Accounts the cluster may hold.")] = 100,
    kubeconfig: KubeconfigOpt = None,
    prometheus_url: Annotated[str | None, typer.Option(help="Prometheus HTTP API URL.")] = None,
    project_services: ServicesOpt = None,
    ca_bundle: CaBundleOpt = None,
    prometheus_ca_bundle: PromCaBundleOpt = None,
    prometheus_bearer_token: PromTokenOpt = None,
    prometheus_username: PromUserOpt = None,
) -> None:
    """Register a cluster (active: new accounts may be placed on it). Both API keys are
    stored encrypted and never shown; docs/hopsworks.md says how to create them."""
    key = api_key or typer.prompt("Hopsworks admin API key", hide_input=True)
    auth_key = auth_api_key or typer.prompt("Hopsworks AUTH-scope API key", hide_input=True)
    data = _parse(
        ClusterCreate,
        name=name,
        api_url=api_url,
        api_key=SecretStr(key),
        auth_api_key=SecretStr(auth_key),
        project_services=_services(project_services),
        max_users=max_users,
        kubeconfig=SecretStr(kubeconfig.read_text()) if kubeconfig else None,
        prometheus_url=prometheus_url,
        ca_bundle=_pem(ca_bundle),
        prometheus_ca_bundle=_pem(prometheus_ca_bundle),
        prometheus_bearer_token=SecretStr(prometheus_bearer_token)
        if prometheus_bearer_token else None,
        prometheus_username=prometheus_username,
        prometheus_password=_prometheus_password(prometheus_username),
    )
    settings = load_settings()
    with transaction(settings) as session:
        out = service.register_cluster(
            session, SecretBox(encryption_box_keys(settings)), data
        )
    _show([out])
    console.print("check that it answers with these keys: hopsplane clusters check "
                  f"{shlex.quote(out.name)}", highlight=False)


@app.command("list")
@friendly
def list_(as_json: JsonOpt = False) -> None:
    """Every cluster with its capacity (accounts assigned / max)."""
    found: list[ClusterOut] = []
    with transaction(load_settings()) as session:
        cursor: str | None = None
        while True:
            page, cursor = service.list_clusters(session, limit=500, cursor=cursor)
            found.extend(page)
            if cursor is None:
                break
    _show(found, as_json)


@app.command()
@friendly
def update(
    cluster: ClusterArg,
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    api_url: Annotated[str | None, typer.Option(help="New base URL.")] = None,
    api_key: ApiKeyOpt = None,
    auth_api_key: AuthApiKeyOpt = None,
    prompt_auth_api_key: Annotated[
        bool, typer.Option(help="Prompt for a new AUTH-scope API key.")
    ] = False,
    max_users: Annotated[int | None, typer.Option(help="New capacity (not below current).")] = None,
    kubeconfig: KubeconfigOpt = None,
    prometheus_url: Annotated[
        str | None, typer.Option(help="Prometheus HTTP API URL; '' removes it.")
    ] = None,
    project_services: ServicesOpt = None,
    ca_bundle: CaBundleOpt = None,
    no_ca_bundle: Annotated[bool, typer.Option(help="Remove the CA bundle.")] = False,
    prometheus_ca_bundle: PromCaBundleOpt = None,
    no_prometheus_ca_bundle: Annotated[
        bool, typer.Option(help="Remove Prometheus' CA bundle.")] = False,
    prometheus_bearer_token: PromTokenOpt = None,
    prometheus_username: PromUserOpt = None,
) -> None:
    """Change a cluster's name, URL, API keys, capacity, kubeconfig, CA bundles, Prometheus
    URL or credentials, or project services. A new URL, key or CA bundle clears the
    cluster's operator error, so that provisioning tries again."""
    if prompt_auth_api_key and not auth_api_key:
        auth_api_key = typer.prompt("Hopsworks AUTH-scope API key", hide_input=True)
    data = _parse(
        ClusterUpdate,
        name=name,
        api_url=api_url,
        api_key=SecretStr(api_key) if api_key else None,
        auth_api_key=SecretStr(auth_api_key) if auth_api_key else None,
        project_services=_services(project_services),
        max_users=max_users,
        kubeconfig=SecretStr(kubeconfig.read_text()) if kubeconfig else None,
        prometheus_url=prometheus_url,
        ca_bundle=_pem(ca_bundle, no_ca_bundle),
        prometheus_ca_bundle=_pem(prometheus_ca_bundle, no_prometheus_ca_bundle),
        prometheus_bearer_token=SecretStr(prometheus_bearer_token)
        if prometheus_bearer_token is not None else None,
        prometheus_username=prometheus_username,
        prometheus_password=_prometheus_password(prometheus_username),
    )
    settings = load_settings()
    with transaction(settings) as session:
        out = service.update_cluster(
            session, SecretBox(encryption_box_keys(settings)),
            lookup.cluster(session, cluster).id, data,
        )
    _show([out])


def _set_status(cluster: str, status: ClusterStatus) -> None:
    with transaction(load_settings()) as session:
        out = service.set_status(session, lookup.cluster(session, cluster).id, status)
    _show([out])


@app.command()
@friendly
def drain(cluster: ClusterArg) -> None:
    """Stop placing new accounts on the cluster; its accounts stay."""
    _set_status(cluster, ClusterStatus.DRAINING)


@app.command()
@friendly
def disable(cluster: ClusterArg) -> None:
    """Take the cluster out of service: no placements, no moves onto it."""
    _set_status(cluster, ClusterStatus.DISABLED)


@app.command()
@friendly
def activate(cluster: ClusterArg) -> None:
    """Put a drained or disabled cluster back into service."""
    _set_status(cluster, ClusterStatus.ACTIVE)


@app.command()
@friendly
def assign(
    account: lookup.AccountArg,
    cluster: Annotated[str | None, typer.Argument(
        metavar="CLUSTER",
        help="Target cluster, by name or id; omitted: the active cluster with most room "
        "(an account that has a cluster keeps it).")] = None,
    by: Annotated[str | None, typer.Option(
        help="Who decided, recorded as assigned_by (default: cli:<your login>).")] = None,
) -> None:
    """Place an account automatically, or assign it to CLUSTER by hand (a move when it
    is on another cluster; its Hopsworks users are then provisioned there). Assigning it
    to the cluster it is on moves nothing and records the assignment as yours."""
    who = by or f"cli:{getpass.getuser()}"
    with transaction(load_settings()) as session:
        owner = lookup.account(session, account, for_change=True)
        before = service.assignment(session, owner.id)
        if cluster is None:
            out = service.assign_account(session, owner.id, assigned_by=who)
        else:
            out = service.move_account(
                session, owner.id, lookup.cluster(session, cluster).id, assigned_by=who)
        target = service.get_cluster(session, out.hopsworks_cluster_id)
    label = lookup.account_label(owner)
    since = out.assigned_at.strftime("%Y-%m-%d %H:%M UTC")
    by_whom = f"assigned by {out.assigned_by}" if out.assigned_by else "placed automatically"
    if before is not None and before.hopsworks_cluster_id == out.hopsworks_cluster_id:
        if cluster is None:
            console.print(f"{label} is already on cluster {target.name} ({target.id}) since "
                          f"{since}, {by_whom}; nothing changed (give a CLUSTER to move it)",
                          highlight=False)
        else:
            console.print(f"{label} stays on cluster {target.name} ({target.id}), where it is "
                          f"since {since}; now recorded as {by_whom}", highlight=False)
        return
    moved = f" (moved from cluster {before.hopsworks_cluster_id})" if before else ""
    console.print(f"{label} → cluster {target.name} ({target.id}), {by_whom}{moved}",
                  highlight=False)


@app.command()
@friendly
def check(cluster: ClusterArg) -> None:
    """Call the cluster with its stored keys: reachable, Hopsworks version, and whether
    each key has the scopes provisioning needs (admin key: ADMIN for users and projects;
    AUTH key: the AUTH scope), and that its Prometheus answers a query with the stored CA
    bundle and credentials. A certificate that is not trusted, expired or made out to
    another name is said in plain words. Lists the stray projects: projects that a user of
    an account owns besides the account's project. Read-only on the cluster. Exit 1 when
    anything fails."""
    settings = load_settings()
    box = SecretBox(settings.effective_encryption_keys)
    with transaction(settings) as session:
        cluster_id = lookup.cluster(session, cluster).id
        secrets = service.connection(session, box, cluster_id)
    auth = secrets.auth_api_key.get_secret_value() if secrets.auth_api_key else None
    client = HopsworksClient(
        secrets.api_url, secrets.api_key.get_secret_value(), auth,
        timeout=settings.hopsworks_timeout_seconds, retries=0,
        verify_tls=settings.hopsworks_verify_tls, ca_bundle=secrets.ca_bundle,
    )
    failed = 0
    projects = None

    def report(what: str, step: Any) -> Any:
        nonlocal failed
        try:
            result = step()
        except AppError as exc:
            failed += 1
            console.print(f"[red]FAIL[/red] {what}: {escape(exc.message)}", highlight=False)
            return None
        console.print(f"[green]ok[/green]   {what}", highlight=False)
        return result

    # Each failure is said once, here: the client's own warning of the same failure
    # would repeat it as a log line.
    client_log = logging.getLogger("hopsplane.integrations.hopsworks")
    level = client_log.level
    if not debugging():
        client_log.setLevel(logging.ERROR)
    try:
        version = report(f"reachable at {secrets.api_url}", client.version)
        if version is None:
            console.print("     the keys are not checked until the cluster answers",
                          highlight=False)
        else:
            shown = ".".join(str(p) for p in version)
            if tuple(version[:2]) < JWT_SINCE:
                failed += 1
                console.print(f"[red]FAIL[/red] Hopsworks {shown}: provisioning needs 3.7 or "
                              "later (API-key /jwt)", highlight=False)
            else:
                console.print(f"[green]ok[/green]   Hopsworks {shown}", highlight=False)
            report("admin key: users (ADMIN or ADMINISTER_USERS scope)",
                   lambda: client.find_user("hopsplane-check@hopsplane.invalid"))
            projects = report("admin key: projects (ADMIN scope)", client.list_projects)
            report("AUTH key: /jwt (AUTH scope)", client.check_auth_key)
    finally:
        client_log.setLevel(level)
        client.close()
    with transaction(settings) as session:
        prometheus = service.prometheus_connection(session, box, cluster_id)
    if prometheus is not None:
        basic = ((prometheus.username, prometheus.password.get_secret_value())
                 if prometheus.username and prometheus.password else None)
        query = build_prometheus_client(
            prometheus.url, ca_bundle=prometheus.ca_bundle, basic_auth=basic,
            bearer_token=prometheus.bearer_token.get_secret_value()
            if prometheus.bearer_token else None)
        try:
            report(f"Prometheus answers at {prometheus.url}",
                   lambda: query.query("vector(1)", datetime.now(UTC)))
        finally:
            close = getattr(query, "close", None)
            if callable(close):
                close()
    if projects:
        with transaction(settings) as session:
            strays = service.find_stray_projects(session, cluster_id, projects)
        for account, found in sorted(strays.items()):
            for p in found:
                console.print(
                    f"[yellow]stray[/yellow] project {p.name} (id {p.id}, namespace "
                    f"{p.namespace}) owned by {p.creator}, a user of account {account}: "
                    "its usage is billed to the account's owner and a suspension stops it; "
                    "delete it in Hopsworks if it should not exist", highlight=False)
    if failed:
        raise typer.Exit(1)
