"""A thin typed client of the Hopsworks REST API.

Base URL ``<api_url>/hopsworks-api/api``. Two credentials per cluster: the admin API key
(``Authorization: ApiKey <key>``, a HOPS_ADMIN user's key with the scopes ADMIN,
ADMINISTER_USERS and PROJECT) for ``/admin/...``, and an API key with only the AUTH scope
that signs short-lived tokens of project owners (``POST /jwt``) for the endpoints that
accept nothing but a JWT of a project member (:mod:`hopsplane.integrations.hopsworks.owner`).
Every call has a timeout; connection errors,
timeouts, 429 and 5xx answers are retried with exponential backoff, except the calls that
must not be sent twice (``createas``, ``POST /jwt``): their outcome is looked up instead.
A 409 is success only for the error codes of :data:`ALREADY_DONE` ("the thing you asked
for exists already"); any other 409 is an error with its code. A certificate the client does
not trust is an operator's error (said in plain words), never retried. The API key is never
logged.

Endpoints and payloads were checked against the public sources of logicalclocks/hopsworks
(``UsersAdminResource``, ``ProjectsAdmin``, ``RESTCodes``); see docs/hopsworks.md for what
was verified and what was not.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import httpx
import structlog

from hopsplane.config import Settings
from hopsplane.fields import is_header_safe
from hopsplane.integrations.hopsworks.errors import (
    NUM_PROJECTS_LIMIT_REACHED,
    PROJECT_EXISTS,
    USER_EXISTS,
    HopsworksMisconfigured,
    HopsworksRejected,
    HopsworksUnavailable,
    ProjectNotReady,
    already_done,
    error_code,
    error_message,
    json_body,
)
from hopsplane.integrations.hopsworks.owner import OwnerSession
from hopsplane.integrations.tls import describe_tls_error, verify_for

log = structlog.get_logger(__name__)

API_PREFIX = "/hopsworks-api/api"
ACTIVATED = "ACTIVATED_ACCOUNT"
DEACTIVATED = "DEACTIVATED_ACCOUNT"
DEFAULT_PROJECT_SERVICES = (
    "JOBS", "KAFKA", "JUPYTER", "HIVE", "SERVING", "FEATURESTORE", "AIRFLOW",
)
"""What the Python client sends at project creation (hopsworks-api, constants.SERVICES,
branch-3.4 to branch-4.6)."""
PROJECT_SERVICES = frozenset({
    "KAFKA", "HISTORY", "DELA", "JUPYTER", "JOBS", "HIVE", "SERVING", "RSTUDIO", "AIRFLOW",
    "PYTHON", "FEATURESTORE",
})
"""ProjectServiceEnum (the same in v3.7.0, branch-3.8 and master): anything else makes
``createas`` fail with IllegalArgumentException."""
OWNER_TOKEN_SECONDS = 600
"""Lifetime of an owner token from ``POST /jwt``: long enough for one unit of provisioning
work, short enough that a token whose signing key could not be deleted afterwards (Hopsworks
away at that moment) stops verifying within minutes rather than after Hopsworks' default
``jwt_lifetime_ms`` of 30 minutes (``Settings.java``; ``JWTHelper.createToken`` takes the
request's ``expiresAt`` when given)."""
JWT_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S.000+0000"
"""``expiresAt`` as Hopsworks' ``DateTimeAdapter`` parses it: SimpleDateFormat
``yyyy-MM-dd'T'HH:mm:ss.SSSZ`` (``api/jwt/DateTimeAdapter.java:25``), in UTC."""


def jwt_expiry(seconds: float | None = None) -> str:
    """``expiresAt`` for a token that lives ``seconds`` (default OWNER_TOKEN_SECONDS)."""
    moment = time.time() + (OWNER_TOKEN_SECONDS if seconds is None else seconds)
    return time.strftime(JWT_DATE_FORMAT, time.gmtime(moment))


JWT_SINCE = (3, 7)
"""POST /jwt takes an API key with the AUTH scope since v3.7.0 (JWTResource)."""


@dataclass(frozen=True, slots=True)
class HopsworksUser:
    id: int
    username: str
    email: str
    status: int | str | None = None
    max_projects: int | None = None  # maxNumProjects: how many projects they may own
    roles: tuple[str, ...] = ()  # group names of ``role`` (UsersBuilder.java:126): HOPS_USER…


@dataclass(frozen=True, slots=True)
class HopsworksProject:
    id: int
    name: str
    namespace: str
    creator: str | None = None  # the owner's username (listed with expand=creator)


def namespace_of(project_name: str) -> str:
    """The Kubernetes namespace Hopsworks derives from a project name: lower case, '_'
    becomes '-' (hopsworks-IT project_helper.rb get_kube_project_namespace)."""
    return project_name.lower().replace("_", "-")


class HopsworksApi(Protocol):
    key_ledger: SigningKeyLedger | None
    def version(self) -> tuple[int, ...] | None: ...
    def create_user(
        self, email: str, first_name: str, last_name: str, max_projects: int | None = None,
    ) -> HopsworksUser: ...
    def find_user(self, email: str) -> HopsworksUser | None: ...
    def list_users(self) -> list[HopsworksUser]: ...
    def find_project(self, name: str) -> HopsworksProject | None: ...
    def create_project(
        self, name: str, owner_username: str, description: str,
        services: Sequence[str] = DEFAULT_PROJECT_SERVICES,
    ) -> HopsworksProject: ...
    def list_projects(self) -> list[HopsworksProject]: ...
    def set_user_active(self, user_id: int, active: bool) -> None: ...
    def set_max_projects(self, user_id: int, max_projects: int) -> None: ...
    def delete_signing_key(self, key_name: str) -> None: ...
    def acting_as(
        self, username: str, ledger: SigningKeyLedger | None = None,
    ) -> contextlib.AbstractContextManager[OwnerSession]: ...
    def close(self) -> None: ...


class SigningKeyLedger(Protocol):
    """Where the names of the signing keys hopsplane makes are written down until they are
    deleted again: Hopsworks has no public call that lists signing keys (``JWTResource.java``
    offers POST, PUT, DELETE /{token}, DELETE /key/{keyName} and the ELK calls only), so a
    key whose ``DELETE /jwt/key`` failed can only be found again from hopsplane's record."""

    def opened(self, key_name: str) -> None: ...
    def closed(self, key_name: str) -> None: ...


class HopsworksClientFactory(Protocol):
    """(api_url, admin api_key, AUTH api_key or None, the cluster's CA bundle) -> client;
    built once from settings, called per cluster."""

    def __call__(
        self, api_url: str, api_key: str, auth_api_key: str | None, *,
        ca_bundle: str | None = None,
    ) -> HopsworksApi: ...


class HopsworksClient:
    def __init__(
        self,
        api_url: str,
        api_key: str,
        auth_api_key: str | None = None,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        verify_tls: bool = True,
        ca_bundle: str | None = None,
        create_timeout: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        for what, key in (("admin", api_key), ("AUTH", auth_api_key)):
            if key is not None and not is_header_safe(key):
                # Stored before keys were checked at input. Sent, it would fail in the HTTP
                # library, whose error (and debug log) repeats the header with the key.
                raise HopsworksMisconfigured(
                    f"the cluster's {what} API key holds characters an HTTP header cannot "
                    "carry (it must be visible ASCII): set it again with `hopsplane "
                    "clusters update`")
        self.base_url = api_url.rstrip("/") + API_PREFIX
        self.retries = max(0, retries)
        self.backoff = max(0.0, backoff)
        self.create_timeout = create_timeout
        self.key_ledger: SigningKeyLedger | None = None
        self._auth_header = f"ApiKey {auth_api_key}" if auth_api_key else None
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"ApiKey {api_key}", "Accept": "application/json"},
            timeout=timeout,
            verify=verify_for(ca_bundle, verify_tls),
            transport=transport,
        )

    def __repr__(self) -> str:  # never show the key
        return f"HopsworksClient({self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def check_auth_key(self) -> None:
        """Whether the AUTH key is accepted at the ``/jwt`` endpoints, without signing
        anything: deleting a signing key that does not exist needs the AUTH scope and
        changes nothing. HopsworksMisconfigured when there is no key or it is refused."""
        if self._auth_header is None:
            raise HopsworksMisconfigured("the cluster has no AUTH API key")
        try:
            self._request("DELETE", f"/jwt/key/hopsplane-check-{uuid.uuid4().hex}",
                          auth=self._auth_header, missing_ok=True)
        except HopsworksRejected as exc:
            _raise_if_auth_key_refused(exc, "")
            raise

    # -- version ---------------------------------------------------------------------------

    def version(self) -> tuple[int, ...] | None:
        """The Hopsworks version (``GET /variables/versions``, no authentication: a list of
        ``{"software", "version"}``, one of them "hopsworks"), as numbers ("3.7.0" ->
        (3, 7, 0); "4.0.0-SNAPSHOT" -> (4, 0, 0)); None when it does not say."""
        response = self._request("GET", "/variables/versions")
        assert response is not None
        data = response.json()
        for item in data if isinstance(data, list) else []:
            if isinstance(item, dict) and item.get("software") == "hopsworks":
                return parse_version(str(item.get("version", "")))
        return None

    # -- users ---------------------------------------------------------------------------

    def create_user(
        self, email: str, first_name: str, last_name: str, max_projects: int | None = None,
    ) -> HopsworksUser:
        """Register a user (status ACTIVATED_ACCOUNT); an existing email is success.

        ``max_projects``: how many projects the user may own. Without it Hopsworks gives
        the cluster's default (``max_num_proj_per_user``, 5), and 0 in the create call
        means that default too (``UsersAdminResource.java:305``), so a number under 1 is
        applied afterwards with ``PUT /admin/users/{id}`` (``UserProfileBuilder.java:190-192``),
        as is any number for a user that existed already."""
        params: dict[str, Any] = {
            "accountType": "M_ACCOUNT_TYPE",
            "email": email,
            "givenName": first_name or "-",
            "surname": last_name or "-",
            "status": ACTIVATED,
        }
        if max_projects is not None and max_projects > 0:
            params["maxNumProjects"] = max_projects
        response = self._request("POST", "/admin/users", params=params, exists_codes={USER_EXISTS})
        created: HopsworksUser | None = None
        if response is not None:
            body = json_body(response)
            if body.get("username") and body.get("id") is not None:
                created = _user(body)
        found = created or self.find_user(email)
        if found is None:
            raise HopsworksRejected(
                f"Hopsworks said user {email} exists but does not list it",
                http_status=409,
                error_code=USER_EXISTS,
            )
        if created is None:
            _refuse_to_adopt(found)
        if max_projects is not None and found.max_projects != max_projects:
            self.set_max_projects(found.id, max_projects)
        return found

    def find_user(self, email: str) -> HopsworksUser | None:
        """The user of ``email``, asked for by email rather than by listing the cluster:
        ``filter_by=user_email:<email>`` is ``UPPER(u.email) LIKE CONCAT(:email, '%')``
        (``UserFacade.java:271``, the value upper-cased by ``api/user/FilterBy.java:26-31``),
        a prefix match, hence the exact comparison here; ``sort_by=email:asc``
        (``UserFacade.java:216-220``) because without it the pages have no ORDER BY and may
        skip or repeat rows."""
        wanted = email.lower()
        params = {"filter_by": f"user_email:{email}", "sort_by": "email:asc"}
        for item in self._paged("/admin/users", params=params):
            if str(item.get("email", "")).lower() == wanted:
                return _user(item)
        return None

    def list_users(self) -> list[HopsworksUser]:
        """Every user of the cluster, in a stable order (``sort_by=email:asc``: without it
        offset pages are unordered, ``UserFacade.java:85-95``)."""
        return [_user(item) for item in self._paged("/admin/users",
                                                      params={"sort_by": "email:asc"})]

    def set_user_active(self, user_id: int, active: bool) -> None:
        """PUT /admin/users/{id} with the new status; setting the current status is a no-op."""
        self._request(
            "PUT",
            f"/admin/users/{int(user_id)}",
            json={"status": ACTIVATED if active else DEACTIVATED},
        )

    def set_max_projects(self, user_id: int, max_projects: int) -> None:
        """PUT /admin/users/{id} ``{"maxNumProjects": n}``: only the fields given are
        applied (``UserProfileBuilder.java:181-199``), 0 included."""
        self._request("PUT", f"/admin/users/{int(user_id)}", json={"maxNumProjects": max_projects})

    # -- projects ------------------------------------------------------------------------

    def create_project(
        self, name: str, owner_username: str, description: str,
        services: Sequence[str] = DEFAULT_PROJECT_SERVICES,
    ) -> HopsworksProject:
        """Create ``name`` owned by the Hopsworks user ``owner_username`` (``createas``
        looks the owner up by username since Hopsworks 3.0) with ``services`` (names of
        ProjectServiceEnum; an empty list makes a project without feature store, jobs or
        Jupyter), and return it as listed. The project may not be usable yet: check it as
        its owner (:meth:`OwnerSession.project_ready`) before relying on it.

        Hopsworks builds the whole project inside this one call (the row is stored ONGOING
        first, ``ProjectController.java:616``, and marked DONE at the end, :545; its own
        integration tests wait 240 s), so the call has its own long timeout and is sent
        once: a re-sent POST would meet the ONGOING row and answer 409 PROJECT_EXISTS.
        After a timeout, a lost connection or a 409 PROJECT_EXISTS, the project is looked
        up by name: one owned by someone else is not ours (HopsworksMisconfigured: an
        operator must rename or delete it); none listed after a timeout is
        :class:`ProjectNotReady` (the job is retried and sends createas again)."""
        body = {
            "projectName": name,
            "owner": owner_username,
            "description": description,
            "services": list(services),
        }
        try:
            response = self._request("POST", "/admin/projects/createas", json=body,
                                     timeout=self.create_timeout, resend=False)
        except HopsworksUnavailable as exc:
            existing = self.find_project(name)
            if existing is None:
                raise ProjectNotReady(
                    f"creating project {name} did not complete ({exc.message}) and Hopsworks "
                    "does not list it: it is tried again") from exc
            return _ours(existing, owner_username)
        except HopsworksRejected as exc:
            # The owner's quota is checked before the name (ProjectController.java:602-607):
            # a repeat for an owner who may own one project answers "limit reached".
            if exc.error_code not in (PROJECT_EXISTS, NUM_PROJECTS_LIMIT_REACHED):
                raise
            existing = self.find_project(name)
            if existing is None:
                if exc.error_code == PROJECT_EXISTS:  # gone between the POST and the list
                    raise ProjectNotReady(f"project {name} exists but is not listed") from exc
                raise
            return _ours(existing, owner_username)
        if response is not None and response.content:
            created = json_body(response)
            pid = created.get("id", created.get("projectId"))
            if pid is not None:
                return _project({**created, "name": created.get("name", name)})
        found = self.find_project(name)
        if found is None:
            raise ProjectNotReady(f"project {name} was created but Hopsworks does not list it")
        return found

    def find_project(self, name: str) -> HopsworksProject | None:
        """The project called ``name`` (names are unique ignoring case:
        ``ProjectFacade.java:219-223``), with its creator; None when there is none."""
        return next((p for p in self.list_projects() if p.name.lower() == name.lower()), None)

    def list_projects(self) -> list[HopsworksProject]:
        """Every project: ``{"items": [{"id", "name", ...}], "count"}`` since Hopsworks 3.2
        (``ProjectsAdminResource``), a bare list of ``{"projectId", "projectName", ...}``
        before. With ``expand=creator`` each names its owner (``ProjectsAdminBuilder.java:67``,
        ``admin/projects/ProjectAdminExpansions.java:40-41``; a bare link otherwise)."""
        response = self._request("GET", "/admin/projects", params={"expand": "creator"})
        assert response is not None
        data = response.json()
        items = data.get("items", []) if isinstance(data, dict) else data
        return [_project(i) for i in items or []]

    # -- acting as a user (the AUTH key) -------------------------------------------------

    @contextmanager
    def acting_as(
        self, username: str, ledger: SigningKeyLedger | None = None,
    ) -> Iterator[OwnerSession]:
        """A session of the Hopsworks user ``username`` for the endpoints that take only a
        JWT of a project member (members, jobs, Jupyter, serving): ``POST /jwt`` with the
        AUTH key signs a token for them under a new signing key, which is deleted
        (``DELETE /jwt/key/{keyName}``, killing the token) when the block ends, whatever
        happened inside it. ``ledger`` records the key's name before it exists and forgets
        it once deleted, so a key left behind is deleted later (:meth:`delete_signing_key`).
        The POST is sent once: re-sent with the same key name it would answer 409
        DUPLICATE_KEY_ERROR."""
        if self._auth_header is None:
            raise HopsworksMisconfigured(
                "the cluster has no AUTH API key (`hopsplane clusters update --auth-api-key`)"
            )
        ledger = ledger or self.key_ledger
        key_name = f"{SIGNING_KEY_PREFIX}{uuid.uuid4().hex}"
        body = {"subject": username, "audiences": "api", "keyName": key_name,
                "renewable": False, "expiresAt": jwt_expiry()}
        if ledger is not None:
            ledger.opened(key_name)
        try:
            try:
                response = self._request("POST", "/jwt", json=body, auth=self._auth_header,
                                         resend=False)
            except HopsworksRejected as exc:
                _raise_if_auth_key_refused(exc, " at POST /jwt")
                raise
            token = json_body(response).get("token") if response is not None else None
            if not token:
                raise HopsworksRejected(
                    "Hopsworks answered POST /jwt without a token", http_status=200,
                    error_code=None,
                )
            yield OwnerSession(self._request, f"Bearer {token}", username)
        finally:
            try:
                self.delete_signing_key(key_name)
            except (HopsworksRejected, HopsworksUnavailable, HopsworksMisconfigured) as exc:
                log.error("hopsworks signing key left behind", key_name=key_name,
                          error=type(exc).__name__)
            else:
                if ledger is not None:
                    ledger.closed(key_name)

    def delete_signing_key(self, key_name: str) -> None:
        """``DELETE /jwt/key/{keyName}`` with the AUTH key; a key that does not exist is a
        no-op 200 (``JWTHelper.java:470-480``)."""
        if self._auth_header is None:
            raise HopsworksMisconfigured("the cluster has no AUTH API key")
        self._request("DELETE", f"/jwt/key/{quote(key_name, safe='')}",
                      auth=self._auth_header, missing_ok=True)

    # -- transport -----------------------------------------------------------------------

    def _paged(
        self, path: str, page: int = 200, params: Mapping[str, Any] | None = None,
    ) -> list[Mapping[str, Any]]:
        items: list[Mapping[str, Any]] = []
        offset = 0
        while True:
            response = self._request("GET", path,
                                     params={**(params or {}), "offset": offset, "limit": page})
            assert response is not None
            data = response.json()
            batch = data.get("items", []) if isinstance(data, dict) else data
            items.extend(batch or [])
            total = data.get("count") if isinstance(data, dict) else None
            offset += len(batch or [])
            if not batch or len(batch) < page or (total is not None and offset >= total):
                return items

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        exists_codes: frozenset[int] | set[int] = frozenset(),
        missing_ok: bool = False,
        missing_codes: frozenset[int] | set[int] = frozenset(),
        auth: str | None = None,
        timeout: float | None = None,
        resend: bool = True,
    ) -> httpx.Response | None:
        """The response, or None when it said "already done" (a code of ``exists_codes``
        that :data:`ALREADY_DONE` names) or "not there" (``missing_ok``: 404 or a code of
        ``missing_codes``). ``auth`` replaces the admin key's Authorization header (the AUTH
        key, a token); ``timeout`` replaces the client's; ``resend=False``: never send the
        request a second time (its outcome is unknown after a timeout: the caller looks)."""
        headers = {"Authorization": auth} if auth is not None else None
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        last: str = ""
        for attempt in range(self.retries + 1 if resend else 1):
            if attempt:
                time.sleep(self.backoff * (2 ** (attempt - 1)))
            try:
                response = self._http.request(
                    method, path, params=params, json=json, data=data, headers=headers, **extra
                )
            except httpx.TransportError as exc:
                problem = describe_tls_error(exc)
                if problem is not None:  # retrying cannot fix a certificate
                    raise HopsworksMisconfigured(
                        f"Hopsworks at {self.base_url} cannot be trusted: {problem}") from exc
                last = f"{type(exc).__name__}"
                log.warning(
                    "hopsworks unreachable",
                    method=method,
                    path=path,
                    attempt=attempt + 1,
                    error=last,
                )
                continue
            if response.status_code == 429 or response.status_code >= 500:
                last = f"HTTP {response.status_code}"
                log.warning(
                    "hopsworks error, retrying",
                    method=method,
                    path=path,
                    attempt=attempt + 1,
                    status=response.status_code,
                )
                continue
            if response.is_success:
                return response
            code = error_code(response)
            if already_done(code, error_message(response), exists_codes):
                return None
            if missing_ok and (response.status_code == 404 or code in missing_codes):
                return None
            raise HopsworksRejected(
                f"Hopsworks refused {method} {path}: HTTP {response.status_code}"
                + (f", errorCode {code}" if code is not None else "")
                + f": {error_message(response)}",
                http_status=response.status_code,
                error_code=code,
            )
        raise HopsworksUnavailable(
            f"Hopsworks at {self.base_url} did not answer {method} {path} "
            f"after {attempt + 1} attempt{'s' if attempt else ''} ({last})"
        )


SIGNING_KEY_PREFIX = "hopsplane-"
"""Every signing key hopsplane makes is called ``hopsplane-<32 hex>`` (42 characters; the
column takes 45, ``JwtSigningKey.java:71-76``)."""

PLAIN_USER_ROLE = "HOPS_USER"


def _refuse_to_adopt(user: HopsworksUser) -> None:
    """An account that existed on the cluster before hopsplane asked for it is adopted only
    when it is a plain HOPS_USER: hopsplane deactivates the users of a suspended account,
    and deactivating an administrator (the keys hopsplane holds belong to a HOPS_ADMIN:
    ``ProjectsAdminResource.java:75``, ``JWTResource.java:71``) would lock hopsplane, and
    every other account of the cluster, out (``ApiKeyFilter.java:56-58`` refuses keys of
    a deactivated user)."""
    roles = set(user.roles)
    if roles and roles != {PLAIN_USER_ROLE}:
        raise HopsworksMisconfigured(
            f"the Hopsworks account {user.username} ({user.email}) exists already with the "
            f"role(s) {', '.join(sorted(roles))}; hopsplane adopts only plain HOPS_USER "
            "accounts (an administrator, maybe the owner of the cluster's API keys, would be "
            "deactivated with the account): give the hopsplane user another email or remove "
            "the role on the cluster")


def _ours(project: HopsworksProject, owner_username: str) -> HopsworksProject:
    """``project`` when ``owner_username`` created it; a project of the same name made by
    someone else is an operator's problem (hopsplane derives names from account ids, so it
    never chose this one for another account)."""
    if project.creator is not None and project.creator != owner_username:
        raise HopsworksMisconfigured(
            f"a project named {project.name} (id {project.id}) exists on the cluster, owned by "
            f"{project.creator}, not by {owner_username}: hopsplane did not create it; rename "
            "or delete it in Hopsworks")
    return project


def _raise_if_auth_key_refused(exc: HopsworksRejected, where: str) -> None:
    """A 401/403 to a call made with the AUTH API key is an operator's error on the
    cluster (retrying cannot fix it); any other refusal is left to the caller."""
    if exc.http_status in (401, 403):
        raise HopsworksMisconfigured(
            f"Hopsworks refused the AUTH API key{where} ({exc.message}); it needs the AUTH "
            "scope of a HOPS_ADMIN user, on Hopsworks 3.7 or later"
        ) from exc


def parse_version(text: str) -> tuple[int, ...] | None:
    numbers: list[int] = []
    for part in text.split("-", 1)[0].split("."):
        if not part.isdigit():
            break
        numbers.append(int(part))
    return tuple(numbers) or None


def _project(item: Mapping[str, Any]) -> HopsworksProject:
    """A project of the admin list (``id``/``name`` since 3.2, ``projectId``/``projectName``
    before). Its namespace as Hopsworks says (``namespace``, or ``projectNamespace`` as the
    4.x Python clients read it) or, when it does not, derived as Hopsworks derives it."""
    name = str(item.get("name", item.get("projectName")))
    namespace = item.get("namespace") or item.get("projectNamespace")
    creator = item.get("creator")
    username = creator.get("username") if isinstance(creator, Mapping) else None
    return HopsworksProject(
        int(item.get("id", item.get("projectId"))), name,
        str(namespace) if namespace else namespace_of(name),
        str(username) if username else None,
    )


def _user(item: Mapping[str, Any]) -> HopsworksUser:
    return HopsworksUser(
        id=int(item["id"]),
        username=str(item["username"]),
        email=str(item["email"]),
        status=item.get("status"),
        max_projects=_int_or_none(item.get("maxNumProjects")),
        roles=_roles(item.get("role")),
    )


def _roles(value: Any) -> tuple[str, ...]:
    """``role`` of a listed user: BbcGroup entities ``{"groupName", "groupDesc", "gid"}``
    (``UserProfileDTO.java:64``, ``BbcGroup.java:78``)."""
    names = []
    for group in value if isinstance(value, list) else []:
        name = group.get("groupName") if isinstance(group, Mapping) else group
        if name:
            names.append(str(name))
    return tuple(sorted(names))


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def build_client_factory(settings: Settings) -> HopsworksClientFactory:
    def factory(api_url: str, api_key: str, auth_api_key: str | None, *,
                ca_bundle: str | None = None) -> HopsworksApi:
        return HopsworksClient(
            api_url,
            api_key,
            auth_api_key,
            timeout=settings.hopsworks_timeout_seconds,
            retries=settings.hopsworks_retries,
            backoff=settings.hopsworks_retry_backoff_seconds,
            verify_tls=settings.hopsworks_verify_tls,
            ca_bundle=ca_bundle,
            create_timeout=settings.hopsworks_create_project_timeout_seconds,
        )

    return factory
