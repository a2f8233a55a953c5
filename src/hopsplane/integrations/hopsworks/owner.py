"""What hopsplane does on a Hopsworks cluster as a project's user rather than as admin.

``ProjectMembersService``, ``JobsResource``/``ExecutionsResource``, ``JupyterService`` and
``ServingService`` take a JWT of a project member (``@JWTRequired`` plus the project-role
filter ``ProjectAuthFilter``, which has no admin bypass); the admin API key is refused
there. :meth:`HopsworksClient.acting_as` signs a short-lived token of the user with the
cluster's AUTH key and hands out an :class:`OwnerSession` that sends it. Sources and
versions: docs/hopsworks.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from hopsplane.integrations.hopsworks.errors import (
    ALREADY_MEMBER,
    ALREADY_MEMBER_TEXT,
    FAILED_TO_ADD_MEMBER,
    FEATURE_FLAG_NOT_ENABLED,
    NO_ROLE_FOUND,
    HopsworksRejected,
    ProjectNotReady,
    json_body,
)

DEFAULT_MEMBER_ROLE = "Data scientist"
TEAM_MEMBER_NOT_FOUND = 150023  # RESTCodes.ProjectErrorCode; HTTP 404
JUPYTER_SERVERS_NOT_FOUND = 100033  # RESTCodes.ServiceErrorCode; HTTP 404
RUNNING_EXECUTION_STATES = (
    "INITIALIZING", "NEW", "NEW_SAVING", "GENERATING_SECURITY_MATERIAL", "SUBMITTED",
    "ACCEPTED", "STARTING_APP_MASTER", "RUNNING", "AGGREGATING_LOGS", "CONVERTING_NOTEBOOK",
)
"""JobState.getRunningStates() (JobState.java, the same in 3.7, 3.8 and master)."""
IDLE_DEPLOYMENT_STATES = frozenset({"Stopped", "Stopping", "Created", "Creating"})
"""ServingStatusEnum values (as JSON: their readable names, ``ServingStatusEnum.java:46-65``)
of a deployment that runs no pods (the Python client treats Creating, Created and Stopped as
stopped and Stopping as stopping: ``hsml/engine/serving_engine.py:276-286``); every other
status (Starting, Running, Idle, Updating, Failed) is stopped."""
PAGE = 100
PROJECT_NOT_FOUND = 150004  # ProjectAuthFilter: no such project; 404


def _email(email: str) -> str:
    """An email as a path segment: ``#``, ``?``, ``%`` or ``/`` in an address would otherwise
    end the path or start a query."""
    return quote(email, safe="@")


def _segment(name: str) -> str:
    return quote(name, safe="")


@dataclass(frozen=True, slots=True)
class Workload:
    """A running thing of a project: a job execution, a Jupyter server or a deployment."""

    kind: str  # "job_execution" | "jupyter" | "deployment"
    ref: str  # execution id, Jupyter user's username, serving id
    name: str
    hopsworks_user: str | None = None  # a username (executions list it with expand=user)
    job: str | None = None  # the job of an execution
    creator_name: str | None = None  # a deployment's creator: "First Last", not a username


class Send(Protocol):
    """How a session sends a request: the admin client's transport (its retries, timeouts
    and "done already" rules) with the session's ``auth`` header instead of the admin key.
    The response, or None for an answer the call accepts as done already or not there."""

    def __call__(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = ...,
        json: Any = ...,
        data: Mapping[str, str] | None = ...,
        exists_codes: frozenset[int] | set[int] = ...,
        missing_ok: bool = ...,
        missing_codes: frozenset[int] | set[int] = ...,
        auth: str | None = ...,
    ) -> httpx.Response | None: ...


class OwnerSession:
    """Calls made with a user's token (``Authorization: Bearer …``)."""

    def __init__(self, send: Send, auth: str, username: str) -> None:
        self._send = send
        self._auth = auth
        self.username = username

    def __repr__(self) -> str:  # never show the token
        return f"OwnerSession({self.username!r})"

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._send(method, path, auth=self._auth, **kwargs)

    # -- members ---------------------------------------------------------------------------

    def add_member(self, project_id: int, email: str, role: str = DEFAULT_MEMBER_ROLE) -> None:
        """Add ``email`` to the project; an existing membership is success. Releases before
        2.5 answered 200 with the members not added in ``fieldErrors``; v2.5.0 and later
        throw FAILED_TO_ADD_MEMBER (400, 150081) with the reason in ``usrMsg``."""
        body = {"projectTeam": [{
            "projectTeamPK": {"projectId": int(project_id), "teamMember": email},
            "teamRole": role,
        }]}
        response = self._call("POST", f"/project/{int(project_id)}/projectMembers",
                              json=body, exists_codes={ALREADY_MEMBER, FAILED_TO_ADD_MEMBER})
        if response is None or not response.content:
            return
        errors = json_body(response).get("fieldErrors") or []
        failed = [str(e) for e in errors if ALREADY_MEMBER_TEXT not in str(e)]
        if failed:
            raise HopsworksRejected(
                f"Hopsworks did not add {email} to project {project_id}: {'; '.join(failed)}",
                http_status=response.status_code, error_code=None,
            )

    def change_role(self, project_id: int, email: str, role: str) -> None:
        """``POST /project/{id}/projectMembers/{email}`` with the form field ``role``."""
        self._call("POST", f"/project/{int(project_id)}/projectMembers/{_email(email)}",
                   data={"role": role})

    def remove_member(self, project_id: int, email: str) -> None:
        """Remove ``email`` from the project; not a member (404, 150023) is success."""
        self._call("DELETE", f"/project/{int(project_id)}/projectMembers/{_email(email)}",
                   missing_ok=True)

    # -- the project -----------------------------------------------------------------------

    def project_ready(self, project_id: int) -> None:
        """Whether the project is usable, as its owner sees it: ``GET /project/{id}``
        (``ProjectService.java:459-476``, a member's JWT) answers the ProjectDTO with
        ``creationStatus`` (``ProjectDTO.java:67,88``), DONE only once Hopsworks finished
        building it (``ProjectController.java:545``). The owner becomes a member part-way
        through the build (``setProjectOwnerAndQuotas``), so until then the answer is 403
        NO_ROLE_FOUND; a failed build is deleted (``cleanup``): 404. Each of these is
        :class:`ProjectNotReady` (retried later); returns when the project is DONE."""
        try:
            response = self._call("GET", f"/project/{int(project_id)}")
        except HopsworksRejected as exc:
            if exc.http_status == 404 or (exc.http_status == 403
                                           and exc.error_code == NO_ROLE_FOUND):
                raise ProjectNotReady(
                    f"project {project_id} is not usable by its owner yet "
                    f"(HTTP {exc.http_status}, errorCode {exc.error_code})") from exc
            raise
        status = json_body(response).get("creationStatus") if response is not None else None
        if status is not None and str(status).upper() != "DONE":
            raise ProjectNotReady(f"project {project_id} is still being created ({status})")


    # -- workloads -------------------------------------------------------------------------

    def running_executions(self, project_id: int) -> list[Workload]:
        """Every execution of every job of the project in a running state, with the
        username of who started it: an execution's ``user`` is a bare link unless the
        listing asks ``expand=user`` (``ExecutionsBuilder.java:110``,
        ``UsersBuilder.java:83-101``)."""
        found: list[Workload] = []
        for job in self._paged(f"/project/{int(project_id)}/jobs"):
            name = str(job.get("name"))
            executions = self._paged(
                f"/project/{int(project_id)}/jobs/{_segment(name)}/executions",
                {"filter_by": "state:" + ",".join(RUNNING_EXECUTION_STATES), "expand": "user"},
            )
            for execution in executions:
                if str(execution.get("state", "")).upper() in RUNNING_EXECUTION_STATES:
                    user = execution.get("user") or {}
                    found.append(Workload(
                        "job_execution", str(execution["id"]), f"{name} #{execution['id']}",
                        str(user.get("username")) if isinstance(user, dict)
                        and user.get("username") else None, name,
                    ))
        return found

    def stop_execution(self, project_id: int, job: str, execution_id: str) -> None:
        """``PUT /project/{id}/jobs/{name}/executions/{id}/status``. It answers 202 whatever
        happened: an execution without an appId yet (still INITIALIZING) is returned
        unchanged (``AbstractExecutionController.java:206-224``), so only a later listing
        says whether it stopped."""
        self._call("PUT", f"/project/{int(project_id)}/jobs/{_segment(job)}/executions/"
                   f"{int(execution_id)}/status", json={"state": "stopped"})

    def stop_own_jupyter(self, project_id: int) -> bool:
        """Stop this user's Jupyter server in the project (``GET .../jupyter/stop`` stops
        only the caller's own); False when there was none (404, 100033) or the user is not
        a member of the project (403 NO_ROLE_FOUND 160000, ``ProjectAuthFilter.java:135-139``:
        they cannot run one there)."""
        try:
            response = self._call("GET", f"/project/{int(project_id)}/jupyter/stop",
                                  missing_ok=True, missing_codes={JUPYTER_SERVERS_NOT_FOUND})
        except HopsworksRejected as exc:
            if exc.http_status == 403 and exc.error_code == NO_ROLE_FOUND:
                return False
            raise
        return response is not None

    def running_deployments(self, project_id: int) -> list[Workload]:
        """``GET /project/{id}/serving``: a JSON list of ServingView. Serving is behind
        ``@FeatureFlagRequired(DATA_SCIENCE_PROFILE)`` (``ServingService.java:116``), off by
        default: such a cluster answers 400 FEATURE_FLAG_NOT_ENABLED (120012) and can run
        no deployment, so that is "none". ``creator`` is the creator's display name
        (``ServingView.java:98-99``), kept as such."""
        try:
            response = self._call("GET", f"/project/{int(project_id)}/serving")
        except HopsworksRejected as exc:
            if exc.http_status == 400 and exc.error_code == FEATURE_FLAG_NOT_ENABLED:
                return []
            raise
        data = response.json() if response is not None and response.content else []
        return [
            Workload("deployment", str(d["id"]), str(d.get("name", d["id"])),
                     creator_name=str(d["creator"]) if d.get("creator") else None)
            for d in data if isinstance(d, dict)
            and str(d.get("status", "")) not in IDLE_DEPLOYMENT_STATES
        ]

    def stop_deployment(self, project_id: int, serving_id: str) -> None:
        """``POST /project/{id}/serving/{servingId}?action=STOP`` (ServingCommands)."""
        self._call("POST", f"/project/{int(project_id)}/serving/{int(serving_id)}",
                   params={"action": "STOP"})

    def _paged(self, path: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            response = self._call(
                "GET", path, params={**(params or {}), "offset": len(items), "limit": PAGE})
            data = response.json() if response is not None and response.content else {}
            batch = data.get("items") or [] if isinstance(data, dict) else []
            items.extend(b for b in batch if isinstance(b, dict))
            total = data.get("count") if isinstance(data, dict) else None
            if len(batch) < PAGE or (total is not None and len(items) >= int(total)):
                return items
