"""What hopsplane does on a Hopsworks cluster as a project's user rather than as admin.

``ProjectMembersService``, ``JobsResource``/``ExecutionsResource``, ``JupyterService`` and
``ServingService`` take a JWT of a project member (``@JWTRequired`` plus the project-role
filter ``ProjectAuthFilter``, which has no admin bypass); the admin API key is refused
there. :meth:`HopsworksClient.acting_as` signs a short-lived token of the user with the
cluster's AUTH key and hands out an :class:`OwnerSession` that sends it. Sources and
versions: docs/hopsworks.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hopsplane.integrations.hopsworks.client import (
    ALREADY_MEMBER,
    DEFAULT_MEMBER_ROLE,
    FAILED_TO_ADD_MEMBER,
    HopsworksRejected,
    _json,
)

if TYPE_CHECKING:
    from hopsplane.integrations.hopsworks.client import HopsworksClient

_ALREADY_MEMBER_TEXT = "already a member"
TEAM_MEMBER_NOT_FOUND = 150023  # RESTCodes.ProjectErrorCode; HTTP 404
JUPYTER_SERVERS_NOT_FOUND = 100033  # RESTCodes.ServiceErrorCode; HTTP 404
RUNNING_EXECUTION_STATES = (
    "INITIALIZING", "NEW", "NEW_SAVING", "GENERATING_SECURITY_MATERIAL", "SUBMITTED",
    "ACCEPTED", "STARTING_APP_MASTER", "RUNNING", "AGGREGATING_LOGS", "CONVERTING_NOTEBOOK",
)
"""JobState.getRunningStates() (JobState.java, the same in 3.7, 3.8 and master)."""
IDLE_DEPLOYMENT_STATES = frozenset({"Stopped", "Stopping", "Created"})
"""ServingStatusEnum values (as JSON: their readable names) of a deployment that runs no
pods; every other status (Starting, Running, Idle, Updating, Failed) is stopped."""
PAGE = 100


@dataclass(frozen=True, slots=True)
class Workload:
    """A running thing of a project: a job execution, a Jupyter server or a deployment."""

    kind: str  # "job_execution" | "jupyter" | "deployment"
    ref: str  # execution id, Jupyter user's username, serving id
    name: str
    hopsworks_user: str | None = None
    job: str | None = None  # the job of an execution


class OwnerSession:
    """Calls made with a user's token (``Authorization: Bearer …``)."""

    def __init__(self, client: HopsworksClient, auth: str, username: str) -> None:
        self._client = client
        self._auth = auth
        self.username = username

    def __repr__(self) -> str:  # never show the token
        return f"OwnerSession({self.username!r})"

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._client._request(method, path, auth=self._auth, **kwargs)

    # -- members ---------------------------------------------------------------------------

    def add_member(self, project_id: int, email: str, role: str = DEFAULT_MEMBER_ROLE) -> None:
        """Add ``email`` to the project; an existing membership is success. 3.x answers 200
        with the members not added in ``fieldErrors``; v3.7.0 and later throw
        FAILED_TO_ADD_MEMBER (400, 150081) with the reason in ``usrMsg``."""
        body = {"projectTeam": [{
            "projectTeamPK": {"projectId": int(project_id), "teamMember": email},
            "teamRole": role,
        }]}
        try:
            response = self._call("POST", f"/project/{int(project_id)}/projectMembers",
                                  json=body, exists_codes={ALREADY_MEMBER})
        except HopsworksRejected as exc:
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
                http_status=response.status_code, error_code=None,
            )

    def change_role(self, project_id: int, email: str, role: str) -> None:
        """``POST /project/{id}/projectMembers/{email}`` with the form field ``role``."""
        self._call("POST", f"/project/{int(project_id)}/projectMembers/{email}",
                   data={"role": role})

    def remove_member(self, project_id: int, email: str) -> None:
        """Remove ``email`` from the project; not a member (404, 150023) is success."""
        self._call("DELETE", f"/project/{int(project_id)}/projectMembers/{email}",
                   missing_ok=True)

    # -- workloads -------------------------------------------------------------------------

    def running_executions(self, project_id: int) -> list[Workload]:
        """Every execution of every job of the project in a running state."""
        found: list[Workload] = []
        for job in self._paged(f"/project/{int(project_id)}/jobs"):
            name = str(job.get("name"))
            executions = self._paged(
                f"/project/{int(project_id)}/jobs/{name}/executions",
                {"filter_by": "state:" + ",".join(RUNNING_EXECUTION_STATES)},
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
        """``PUT /project/{id}/jobs/{name}/executions/{id}/status`` (answers 202)."""
        self._call("PUT", f"/project/{int(project_id)}/jobs/{job}/executions/"
                   f"{int(execution_id)}/status", json={"state": "stopped"})

    def stop_own_jupyter(self, project_id: int) -> bool:
        """Stop this user's Jupyter server in the project (``GET .../jupyter/stop`` stops
        only the caller's own); False when there was none (404, 100033)."""
        response = self._call("GET", f"/project/{int(project_id)}/jupyter/stop",
                              missing_ok=True, missing_codes={JUPYTER_SERVERS_NOT_FOUND})
        return response is not None

    def running_deployments(self, project_id: int) -> list[Workload]:
        """``GET /project/{id}/serving``: a JSON list of ServingView."""
        response = self._call("GET", f"/project/{int(project_id)}/serving")
        data = response.json() if response is not None and response.content else []
        return [
            Workload("deployment", str(d["id"]), str(d.get("name", d["id"])),
                     str(d["creator"]) if d.get("creator") else None)
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
