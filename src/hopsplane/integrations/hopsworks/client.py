"""A thin typed client of the Hopsworks admin REST API.

Base URL ``<api_url>/hopsworks-api/api``, header ``Authorization: ApiKey <key>`` (an API key
of a HOPS_ADMIN user with the ADMIN scope). Every call has a timeout; connection errors,
timeouts, 429 and 5xx answers are retried with exponential backoff; "already exists"
answers (HTTP 409, or Hopsworks error codes USER_EXISTS 160003 / PROJECT_EXISTS 150001) are
success, so every operation can be repeated safely. The API key is never logged.

Endpoints and payloads were checked against the public sources of logicalclocks/hopsworks
(``UsersAdminResource``, ``ProjectsAdmin``, ``RESTCodes``); see docs/hopsworks.md for what
was verified and what was not.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import structlog

from hopsplane.config import Settings
from hopsplane.errors import AppError, Unavailable

log = structlog.get_logger(__name__)

API_PREFIX = "/hopsworks-api/api"
USER_EXISTS = 160003
PROJECT_EXISTS = 150001
ALREADY_MEMBER = 150024  # RESTCodes.ProjectErrorCode.TEAM_MEMBER_ALREADY_EXISTS; 409 too
FAILED_TO_ADD_MEMBER = 150081  # newest ProjectMembersService: a member not added, reason in usrMsg
_ALREADY_MEMBER_TEXT = "already a member"
ACTIVATED = "ACTIVATED_ACCOUNT"
DEACTIVATED = "DEACTIVATED_ACCOUNT"
DEFAULT_MEMBER_ROLE = "Data scientist"


class HopsworksUnavailable(Unavailable):
    """Hopsworks could not be reached or kept failing (5xx) after the retries."""


class HopsworksRejected(AppError):
    """Hopsworks refused the request (a 4xx other than "already exists")."""

    status = 502

    def __init__(self, message: str, *, http_status: int, error_code: int | None) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.error_code = error_code


@dataclass(frozen=True, slots=True)
class HopsworksUser:
    id: int
    username: str
    email: str
    status: int | str | None = None


@dataclass(frozen=True, slots=True)
class HopsworksProject:
    id: int
    name: str


class HopsworksApi(Protocol):
    def create_user(self, email: str, first_name: str, last_name: str) -> HopsworksUser: ...
    def find_user(self, email: str) -> HopsworksUser | None: ...
    def list_users(self) -> list[HopsworksUser]: ...
    def create_project(
        self, name: str, owner_username: str, description: str
    ) -> HopsworksProject: ...
    def list_projects(self) -> list[HopsworksProject]: ...
    def add_member(self, project_id: int, email: str, role: str = DEFAULT_MEMBER_ROLE) -> None: ...
    def remove_member(self, project_id: int, email: str) -> None: ...
    def set_user_active(self, user_id: int, active: bool) -> None: ...
    def close(self) -> None: ...


HopsworksClientFactory = Callable[[str, str], HopsworksApi]
"""(api_url, api_key) -> client; built once from settings, called per cluster."""


class HopsworksClient:
    def __init__(
        self,
        api_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        verify_tls: bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = api_url.rstrip("/") + API_PREFIX
        self.retries = max(0, retries)
        self.backoff = max(0.0, backoff)
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

    # -- users ---------------------------------------------------------------------------

    def create_user(self, email: str, first_name: str, last_name: str) -> HopsworksUser:
        """Register a user (status ACTIVATED_ACCOUNT); an existing email is success."""
        params = {
            "accountType": "M_ACCOUNT_TYPE",
            "email": email,
            "givenName": first_name or "-",
            "surname": last_name or "-",
            "status": ACTIVATED,
        }
        response = self._request("POST", "/admin/users", params=params, exists_codes={USER_EXISTS})
        if response is not None:
            body = _json(response)
            if body.get("username") and body.get("id") is not None:
                return _user(body)
        found = self.find_user(email)
        if found is None:
            raise HopsworksRejected(
                f"Hopsworks said user {email} exists but does not list it",
                http_status=409,
                error_code=USER_EXISTS,
            )
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

    # -- projects ------------------------------------------------------------------------

    def create_project(
        self, name: str, owner_username: str, description: str
    ) -> HopsworksProject:
        """Create ``name`` owned by the Hopsworks user ``owner_username`` (``createas``
        looks the owner up by username since Hopsworks 3.0); an existing project of that
        name is success (names are derived from the account, so the same name means ours).
        Hopsworks answers without the project's id (201 with a message up to 3.1, 200 with
        no body since 3.2), so it is read from the project list."""
        body = {
            "projectName": name,
            "owner": owner_username,
            "description": description,
            "services": [],
        }
        response = self._request(
            "POST", "/admin/projects/createas", json=body, exists_codes={PROJECT_EXISTS}
        )
        if response is not None and response.content:
            created = _json(response)
            pid = created.get("id", created.get("projectId"))
            if pid is not None:
                return HopsworksProject(int(pid), str(created.get("name", name)))
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
        before."""
        response = self._request("GET", "/admin/projects")
        assert response is not None
        data = response.json()
        items = data.get("items", []) if isinstance(data, dict) else data
        return [
            HopsworksProject(
                int(i.get("id", i.get("projectId"))), str(i.get("name", i.get("projectName")))
            )
            for i in items or []
        ]

    def add_member(self, project_id: int, email: str, role: str = DEFAULT_MEMBER_ROLE) -> None:
        """Add ``email`` to the project; an existing membership is success. Hopsworks
        answers 200 even when a member could not be added, and says why in ``fieldErrors``
        ("... is already a member in this project.", "... was not found in the system.")."""
        body = {
            "projectTeam": [
                {
                    "projectTeamPK": {"projectId": int(project_id), "teamMember": email},
                    "teamRole": role,
                }
            ]
        }
        try:
            response = self._request(
                "POST",
                f"/project/{int(project_id)}/projectMembers",
                json=body,
                exists_codes={ALREADY_MEMBER},
            )
        except HopsworksRejected as exc:
            # the newest sources answer 400 FAILED_TO_ADD_MEMBER instead of a 200 with
            # fieldErrors; "already a member" is still success
            if exc.error_code == FAILED_TO_ADD_MEMBER and _ALREADY_MEMBER_TEXT in exc.message:
                return
            raise
        if response is None or not response.content:
            return
        errors = _json(response).get("fieldErrors") or []
        failed = [str(e) for e in errors if _ALREADY_MEMBER_TEXT not in str(e)]
        if failed:
            raise HopsworksRejected(
                f"Hopsworks did not add {email} to project {project_id}: {'; '.join(failed)}",
                http_status=response.status_code,
                error_code=None,
            )

    def remove_member(self, project_id: int, email: str) -> None:
        """Remove ``email`` from the project; not a member (404) is success."""
        self._request(
            "DELETE", f"/project/{int(project_id)}/projectMembers/{email}", missing_ok=True
        )

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
        exists_codes: frozenset[int] | set[int] = frozenset(),
        missing_ok: bool = False,
    ) -> httpx.Response | None:
        """The response, or None when it said "already exists" / "not there" (success)."""
        last: str = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * (2 ** (attempt - 1)))
            try:
                response = self._http.request(method, path, params=params, json=json)
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
            if missing_ok and response.status_code == 404:
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


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _user(item: Mapping[str, Any]) -> HopsworksUser:
    return HopsworksUser(
        id=int(item["id"]),
        username=str(item["username"]),
        email=str(item["email"]),
        status=item.get("status"),
    )


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
    def factory(api_url: str, api_key: str) -> HopsworksApi:
        return HopsworksClient(
            api_url,
            api_key,
            timeout=settings.hopsworks_timeout_seconds,
            retries=settings.hopsworks_retries,
            backoff=settings.hopsworks_retry_backoff_seconds,
            verify_tls=settings.hopsworks_verify_tls,
        )

    return factory
