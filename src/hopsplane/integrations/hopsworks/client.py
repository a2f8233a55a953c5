"""A thin typed client of the Hopsworks REST API.

Base URL ``<api_url>/hopsworks-api/api``. Two credentials per cluster: the admin API key
(``Authorization: ApiKey <key>``, a HOPS_ADMIN user's key with the scopes ADMIN,
ADMINISTER_USERS and PROJECT) for ``/admin/...``, and an API key with only the AUTH scope
that signs short-lived tokens of project owners (``POST /jwt``) for the endpoints that
accept nothing but a JWT of a project member (:mod:`hopsplane.integrations.hopsworks.owner`).
Every call has a timeout; connection errors,
timeouts, 429 and 5xx answers are retried with exponential backoff; "already exists"
answers (HTTP 409, or Hopsworks error codes USER_EXISTS 160003 / PROJECT_EXISTS 150001) are
success, so every operation can be repeated safely. The API key is never logged.

Endpoints and payloads were checked against the public sources of logicalclocks/hopsworks
(``UsersAdminResource``, ``ProjectsAdmin``, ``RESTCodes``); see docs/hopsworks.md for what
was verified and what was not.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import structlog

from hopsplane.config import Settings
from hopsplane.errors import AppError, Unavailable
from hopsplane.fields import is_header_safe

if TYPE_CHECKING:
    from hopsplane.integrations.hopsworks.owner import OwnerSession

log = structlog.get_logger(__name__)

API_PREFIX = "/hopsworks-api/api"
USER_EXISTS = 160003
PROJECT_EXISTS = 150001
ALREADY_MEMBER = 150024  # RESTCodes.ProjectErrorCode.TEAM_MEMBER_ALREADY_EXISTS; 409 too
FAILED_TO_ADD_MEMBER = 150081  # ProjectMembersService since 2.5: not added, reason in usrMsg
NUM_PROJECTS_LIMIT_REACHED = 150002  # RESTCodes.ProjectErrorCode; HTTP 400
NO_ROLE_FOUND = 160000  # ProjectAuthFilter: the caller is not a member of the project; 403
FEATURE_FLAG_NOT_ENABLED = 120012  # FeatureFlagFilter: e.g. serving without the DS profile
_ALREADY_MEMBER_TEXT = "already a member"
ACTIVATED = "ACTIVATED_ACCOUNT"
DEACTIVATED = "DEACTIVATED_ACCOUNT"
DEFAULT_MEMBER_ROLE = "Data scientist"
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


class HopsworksUnavailable(Unavailable):
    """Hopsworks could not be reached or kept failing (5xx) after the retries."""


class HopsworksRejected(AppError):
    """Hopsworks refused the request (a 4xx other than "already exists")."""

    status = 502

    def __init__(self, message: str, *, http_status: int, error_code: int | None) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.error_code = error_code


class HopsworksMisconfigured(AppError):
    """The cluster cannot do what provisioning needs until an operator acts: no AUTH key,
    a key without the AUTH scope, or a Hopsworks older than 3.7 (no API-key ``/jwt``).
    Retrying does not help; provisioning reports it on the cluster instead."""

    status = 503


@dataclass(frozen=True, slots=True)
class HopsworksUser:
    id: int
    username: str
    email: str
    status: int | str | None = None
    max_projects: int | None = None  # maxNumProjects: how many projects they may own


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
    def version(self) -> tuple[int, ...] | None: ...
    def create_user(
        self, email: str, first_name: str, last_name: str, max_projects: int | None = None,
    ) -> HopsworksUser: ...
    def find_user(self, email: str) -> HopsworksUser | None: ...
    def list_users(self) -> list[HopsworksUser]: ...
    def create_project(
        self, name: str, owner_username: str, description: str,
        services: Sequence[str] = DEFAULT_PROJECT_SERVICES,
    ) -> HopsworksProject: ...
    def list_projects(self) -> list[HopsworksProject]: ...
    def set_user_active(self, user_id: int, active: bool) -> None: ...
    def set_max_projects(self, user_id: int, max_projects: int) -> None: ...
    def acting_as(self, username: str) -> contextlib.AbstractContextManager[OwnerSession]: ...
    def close(self) -> None: ...


HopsworksClientFactory = Callable[[str, str, "str | None"], HopsworksApi]
"""(api_url, admin api_key, AUTH api_key or None) -> client; built once from settings,
called per cluster."""


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
        self._auth_header = f"ApiKey {auth_api_key}" if auth_api_key else None
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"ApiKey {api_key}", "Accept": "application/json"},
            timeout=timeout,
            verify=verify_tls,
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
            body = _json(response)
            if body.get("username") and body.get("id") is not None:
                created = _user(body)
        found = created or self.find_user(email)
        if found is None:
            raise HopsworksRejected(
                f"Hopsworks said user {email} exists but does not list it",
                http_status=409,
                error_code=USER_EXISTS,
            )
        if max_projects is not None and found.max_projects != max_projects:
            self.set_max_projects(found.id, max_projects)
        return found

    def find_user(self, email: str) -> HopsworksUser | None:
        wanted = email.lower()
        return next((u for u in self.list_users() if u.email.lower() == wanted), None)

    def list_users(self) -> list[HopsworksUser]:
        return [_user(item) for item in self._paged("/admin/users")]

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
        Jupyter); an existing project of that name is success (names are derived from the
        account, so the same name means ours). Hopsworks answers without the project's id
        (201 with a message up to 3.1, 200 with no body since 3.2), so it is read from the
        project list."""
        body = {
            "projectName": name,
            "owner": owner_username,
            "description": description,
            "services": list(services),
        }
        try:
            response = self._request(
                "POST", "/admin/projects/createas", json=body, exists_codes={PROJECT_EXISTS}
            )
        except HopsworksRejected as exc:
            # The owner's quota is checked before the name (ProjectController.java:602-607):
            # a repeat for an owner who may own one project answers "limit reached".
            if exc.error_code != NUM_PROJECTS_LIMIT_REACHED:
                raise
            existing = next((p for p in self.list_projects() if p.name == name), None)
            if existing is None:
                raise
            return existing
        if response is not None and response.content:
            created = _json(response)
            pid = created.get("id", created.get("projectId"))
            if pid is not None:
                return _project({**created, "name": created.get("name", name)})
        for project in self.list_projects():
            if project.name == name:
                return project
        raise HopsworksRejected(
            f"project {name} was created but Hopsworks does not list it",
            http_status=response.status_code if response is not None else 409,
            error_code=None,
        )

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
    def acting_as(self, username: str) -> Iterator[OwnerSession]:
        """A session of the Hopsworks user ``username`` for the endpoints that take only a
        JWT of a project member (members, jobs, Jupyter, serving): ``POST /jwt`` with the
        AUTH key signs a token for them under a new signing key, which is deleted
        (``DELETE /jwt/key/{keyName}``, killing the token) when the block ends, whatever
        happened inside it."""
        from hopsplane.integrations.hopsworks.owner import OwnerSession

        if self._auth_header is None:
            raise HopsworksMisconfigured(
                "the cluster has no AUTH API key (`hopsplane clusters update --auth-api-key`)"
            )
        key_name = f"hopsplane-{uuid.uuid4().hex}"
        body = {"subject": username, "audiences": "api", "keyName": key_name,
                "renewable": False, "expiresAt": jwt_expiry()}
        try:
            try:
                response = self._request("POST", "/jwt", json=body, auth=self._auth_header)
            except HopsworksRejected as exc:
                _raise_if_auth_key_refused(exc, " at POST /jwt")
                raise
            token = _json(response).get("token") if response is not None else None
            if not token:
                raise HopsworksRejected(
                    "Hopsworks answered POST /jwt without a token", http_status=200,
                    error_code=None,
                )
            yield OwnerSession(self, f"Bearer {token}", username)
        finally:
            try:
                self._request("DELETE", f"/jwt/key/{key_name}", auth=self._auth_header,
                              missing_ok=True)
            except (HopsworksRejected, HopsworksUnavailable) as exc:
                log.error("hopsworks signing key left behind", key_name=key_name,
                          error=type(exc).__name__)

    # -- transport -----------------------------------------------------------------------

    def _paged(self, path: str, page: int = 200) -> list[Mapping[str, Any]]:
        items: list[Mapping[str, Any]] = []
        offset = 0
        while True:
            response = self._request("GET", path, params={"offset": offset, "limit": page})
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
    ) -> httpx.Response | None:
        """The response, or None when it said "already exists" / "not there" (success).
        ``auth`` replaces the admin key's Authorization header (the AUTH key, a token)."""
        headers = {"Authorization": auth} if auth is not None else None
        last: str = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * (2 ** (attempt - 1)))
            try:
                response = self._http.request(
                    method, path, params=params, json=json, data=data, headers=headers
                )
            except httpx.TransportError as exc:
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
            code = _error_code(response)
            if response.status_code == 409 or (code is not None and code in exists_codes):
                return None
            if missing_ok and (response.status_code == 404 or code in missing_codes):
                return None
            raise HopsworksRejected(
                f"Hopsworks refused {method} {path}: HTTP {response.status_code}"
                + (f", errorCode {code}" if code is not None else "")
                + f": {_error_message(response)}",
                http_status=response.status_code,
                error_code=code,
            )
        raise HopsworksUnavailable(
            f"Hopsworks at {self.base_url} did not answer {method} {path} "
            f"after {self.retries + 1} attempts ({last})"
        )


def _raise_if_auth_key_refused(exc: HopsworksRejected, where: str) -> None:
    """A 401/403 to a call made with the AUTH API key is an operator's error on the
    cluster (retrying cannot fix it); any other refusal is left to the caller."""
    if exc.http_status in (401, 403):
        raise HopsworksMisconfigured(
            f"Hopsworks refused the AUTH API key{where} ({exc.message}); it needs the AUTH "
            "scope of a HOPS_ADMIN user, on Hopsworks 3.7 or later"
        ) from exc


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


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
    )


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _error_code(response: httpx.Response) -> int | None:
    code = _json(response).get("errorCode")
    try:
        return None if code is None else int(code)
    except (TypeError, ValueError):
        return None


def _error_message(response: httpx.Response) -> str:
    body = _json(response)
    message = body.get("usrMsg") or body.get("errorMsg") or response.text[:200]
    return str(message)


def build_client_factory(settings: Settings) -> HopsworksClientFactory:
    def factory(api_url: str, api_key: str, auth_api_key: str | None) -> HopsworksApi:
        return HopsworksClient(
            api_url,
            api_key,
            auth_api_key,
            timeout=settings.hopsworks_timeout_seconds,
            retries=settings.hopsworks_retries,
            backoff=settings.hopsworks_retry_backoff_seconds,
            verify_tls=settings.hopsworks_verify_tls,
        )

    return factory
