"""A local HTTP server that answers like the Hopsworks REST API (the parts hopsplane uses),
including the authentication model a real cluster enforces: the cluster of `hopsplane dev`
(registered as an ordinary cluster, keys encrypted as usual) and the strict fake of the
tests, one and the same. It imports nothing of hopsplane. Paths below are under
``hopsworks-api/src/main/java/io/hops/hopsworks/`` of logicalclocks/hopsworks (v3.7.0,
branch-3.8 and master 2b1cb50ee agree on every rule here unless said otherwise):

- ``@ApiKeyRequired`` scopes per endpoint: ``api/admin/UsersAdminResource.java:84`` (ADMIN or
  ADMINISTER_USERS; :281 adds ADMINISTER_USERS_REGISTER for POST /admin/users),
  ``api/admin/projects/ProjectsAdminResource.java:75`` (ADMIN only),
  ``api/jwt/JWTResource.java:71,106`` (AUTH only, since v3.7.0; before, /jwt took a JWT
  only). A key without an accepted scope: 403 KEY_SCOPE_CONTROL_EXCEPTION (320004,
  ``hopsworks-api-auth/.../api/auth/key/ApiKeyFilter.java:122-131``).
- JWT-only endpoints: an ``ApiKey`` header where the method has no ``@ApiKeyRequired`` is
  401 "Authorization method not supported." errorCode 200003 (``api/filter/AuthFilter.java:83-90``);
  a ``Bearer`` token where the method has no ``@JWTRequired`` is the same 401
  (``ApiKeyFilter.java:64-72``). ``api/project/ProjectMembersService.java:122-212`` and
  ``api/jupyter/JupyterService.java:377-391`` are JWT-only.
- Tokens: ``POST /jwt`` signs a token of ``subject`` under a new signing key ``keyName``
  with the role HOPS_USER (``api/jwt/JWTHelper.java:261-282``); a missing field answers 200
  with no body (:263-267); ``DELETE /jwt/key/{keyName}`` deletes the key, after which the
  token no longer verifies (401, ``hopsworks-jwt/.../filter/JWTFilter.java:81-96``). The
  token's roles and audience are checked against ``@JWTRequired`` (JWTFilter.java:108-129:
  403 200014).
- ``api/filter/ProjectAuthFilter.java:91-146``: project not found 404 (150004); a caller
  with no role in the project 403 NO_ROLE_FOUND (160000), admins included; a role not
  allowed 403 PROJECT_ROLE_FORBIDDEN (150068).
- ``createas`` answers 200 with no body (ProjectsAdminResource.java:217-218); unknown
  services are refused (``hopsworks-common/.../project/ProjectController.java:368-373``:
  ProjectServiceEnum.valueOf -> IllegalArgumentException -> ILLEGAL_ARGUMENT 120001, whose
  status is 422 UNPROCESSABLE_ENTITY: ``hopsworks-rest-utils/.../RESTCodes.java:805-806``).
- Project quota: ``POST /admin/users`` sets ``maxNumProjects`` from its query parameter,
  0 or absent meaning the cluster default (``UsersAdminResource.java:286,305``;
  ``Settings.java:1410`` MAX_NUM_PROJ_PER_USER = 5); ``PUT /admin/users/{id}`` applies a
  ``maxNumProjects`` of its body, 0 included (``api/user/UserProfileBuilder.java:190-192``);
  the list shows ``maxNumProjects`` and ``numActiveProjects`` (``UsersBuilder.java:121-122``).
  A project is refused NUM_PROJECTS_LIMIT_REACHED (400, 150002, ``RESTCodes.java:66-68``)
  when the owner already has ``maxNumProjects`` projects, and that check comes before the
  name's (``ProjectController.java:602-607``; ``ProjectFacade.java:282-285``; -1: no limit).
  The count is of the projects the user owns (``UsersController.java:581-584``).
- ``GET /admin/projects``: every project; ``creator`` is only ``{href}`` unless
  ``expand=creator`` (``ProjectsAdminBuilder.java:67``, ``UsersBuilder.java:79-101``,
  ``admin/projects/ProjectAdminExpansions.java:40-41``).
- Deactivation does not end sessions: user status is checked at login and API-key use only
  (``common/user/AuthController.java:189-195``, ``api/filter/ApiKeyFilter.java:56-58`` in
  v3.7.0), never by ``JWTFilter`` (``hopsworks-jwt/.../filter/JWTFilter.java:57-132``) or
  ``ProjectAuthFilter``: a deactivated user's token keeps working (:meth:`FakeHopsworks.login`).
- Members (``ProjectMembersService.java``): add (DATA_OWNER) throws FAILED_TO_ADD_MEMBER 400
  150081 with the reason in usrMsg (:161-172; 3.x before 3.7 answered 200 with
  ``fieldErrors``: ``members_failure = "fieldErrors"``); change role (DATA_OWNER, form
  ``role``; the owner's role 403 150014, :185-203); remove (DATA_OWNER or DATA_SCIENTIST;
  not a member 404 150023, :212-238).
- Workloads: jobs and executions (``api/jobs/JobsResource.java:112-133``,
  ``api/jobs/executions/ExecutionsResource.java:94-159``), Jupyter (``JupyterService.java``
  stop: the caller's own server only, else 404 100033), serving
  (``api/serving/ServingService.java:109-160, 259-298``).
- An execution's ``user`` is ``{href}`` only; ``username`` (and names, email) come with
  ``expand=user`` (``ExecutionsBuilder.java:110``, ``UsersBuilder.java:83-101``).
  ``PUT .../executions/{id}/status`` answers 202 with the execution
  (``ExecutionsResource.java:141-160``) and kills only an execution that has an appId and a
  running state; one still INITIALIZING without an appId comes back unchanged
  (``common/jobs/execution/AbstractExecutionController.java:206-224``).
  ``POST .../executions`` starts one as the caller (``ExecutionsResource.java:164-172``).
- Serving carries ``@FeatureFlagRequired(DATA_SCIENCE_PROFILE)`` (``ServingService.java:116,
  267``): with ``enable_data_science_profile`` false, its default (``Settings.java:3179``;
  chef ``attributes/default.rb``), ``FeatureFlagFilter.java:53-64`` answers 400 120012
  (FEATURE_FLAG_NOT_ENABLED, ``RESTCodes.java:820``) after authentication. A deployment's
  ``creator`` is the display name ``"First Last"`` (``api/serving/ServingView.java:98-99``).
- ``GET /variables/versions`` needs no authentication (``api/util/VariablesService.java:176-188``).
- ``GET /admin/users`` (``UsersAdminResource.java:111-125``): without ``sort_by`` the query
  has no ORDER BY (``common/dao/user/UserFacade.java:85-95``), so the fake answers each call in
  a new order; ``sort_by=email:asc`` orders by ``LOWER(email)`` (:216-220); no ``limit``
  means every row. ``filter_by=user_email:x`` is ``UPPER(u.email) LIKE CONCAT(:email, '%')``
  (:271; the value upper-cased by ``api/user/FilterBy.java:26-31``): a prefix match. Each
  user carries ``role``, a list of BbcGroup ``{groupName, groupDesc, gid}``
  (``UsersBuilder.java:126``, ``UserProfileDTO.java:64``); new users are HOPS_USER.
- ``createas`` is synchronous and slow: the row is stored ONGOING first
  (``ProjectController.java:616``), the owner becomes a member part-way
  (``setProjectOwnerAndQuotas``), DONE at the end (:545); the name check counts rows of any
  status (:606-607, ``ProjectFacade.java:219-223``, names compared ignoring case), so a
  second call during the build answers 409 PROJECT_EXISTS. :meth:`FakeHopsworks.hold_creation`
  keeps a creation in its ONGOING phase until released.
- ``GET /project/{id}`` (``api/project/ProjectService.java:459-476``: JWT or a PROJECT-scope
  key, any member) answers the ProjectDTO with ``creationStatus``
  (``common/project/ProjectDTO.java:67,88``).
- Codes of 409 answers: USER_EXISTS 160003, PROJECT_EXISTS 150001, DUPLICATE_KEY_ERROR
  200015 (a ``POST /jwt`` re-sent with the same ``keyName``) (``RESTCodes.java:65,876,921``).
- TLS: ``FakeHopsworks(ssl_context=...)`` serves HTTPS with the certificate given.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

PREFIX = "/hopsworks-api/api"
ADMIN_SCOPES = frozenset({"ADMIN", "ADMINISTER_USERS", "PROJECT"})
SERVICES = frozenset({"KAFKA", "HISTORY", "DELA", "JUPYTER", "JOBS", "HIVE", "SERVING",
                      "RSTUDIO", "AIRFLOW", "PYTHON", "FEATURESTORE"})
RUNNING = frozenset({"INITIALIZING", "NEW", "NEW_SAVING", "GENERATING_SECURITY_MATERIAL",
                     "SUBMITTED", "ACCEPTED", "STARTING_APP_MASTER", "RUNNING",
                     "AGGREGATING_LOGS", "CONVERTING_NOTEBOOK"})
OWNER, SCIENTIST = "Data owner", "Data scientist"
ADMIN_USER = "admin"  # the HOPS_ADMIN user whose keys the cluster holds
DEFAULT_MAX_NUM_PROJECTS = 5  # Settings.java:1410 (master; :1403 in v3.7.0)
FEATURE_FLAG_NOT_ENABLED = (400, {"errorCode": 120012, "errorMsg": "Data science profile is "
                                  "required for this operation.",
                                  "usrMsg": "Data science profile is required for this "
                                            "operation."})


@dataclass(frozen=True)
class Rule:
    """The authentication annotations of an endpoint."""

    api_scopes: frozenset[str] | None = None  # @ApiKeyRequired acceptedScopes
    jwt_roles: frozenset[str] | None = None  # @JWTRequired allowedUserRoles
    jwt_audiences: frozenset[str] = frozenset({"api"})
    project_roles: frozenset[str] | None = None  # @AllowedProjectRoles


_USERS_ADMIN = Rule(frozenset({"ADMIN", "ADMINISTER_USERS"}), frozenset({"HOPS_ADMIN"}))
_PROJECTS_ADMIN = Rule(frozenset({"ADMIN"}), frozenset({"HOPS_ADMIN"}))
_JWT_AUTH = Rule(frozenset({"AUTH"}), frozenset({"AGENT"}), frozenset({"services"}))
_ANY_MEMBER = frozenset({OWNER, SCIENTIST})
_USER_ROLES = frozenset({"HOPS_ADMIN", "HOPS_USER"})
ROUTES: list[tuple[str, str, Rule]] = [
    ("GET", r"/variables/versions", Rule()),
    ("POST", r"/admin/users", Rule(frozenset({"ADMIN", "ADMINISTER_USERS",
                                               "ADMINISTER_USERS_REGISTER"}),
                                    frozenset({"HOPS_ADMIN"}))),
    ("GET", r"/admin/users", _USERS_ADMIN),
    ("PUT", r"/admin/users/\d+", _USERS_ADMIN),
    ("POST", r"/admin/projects/createas", _PROJECTS_ADMIN),
    ("GET", r"/admin/projects", _PROJECTS_ADMIN),
    ("GET", r"/project/\d+", Rule(frozenset({"PROJECT"}), _USER_ROLES | {"HOPS_SERVICE_USER"},
                                  project_roles=_ANY_MEMBER)),
    ("POST", r"/jwt", _JWT_AUTH),
    ("DELETE", r"/jwt/key/[^/]+", _JWT_AUTH),
    ("POST", r"/project/\d+/projectMembers",
     Rule(None, _USER_ROLES | {"HOPS_SERVICE_USER"}, project_roles=frozenset({OWNER}))),
    ("POST", r"/project/\d+/projectMembers/[^/]+",
     Rule(None, _USER_ROLES | {"HOPS_SERVICE_USER"}, project_roles=frozenset({OWNER}))),
    ("DELETE", r"/project/\d+/projectMembers/[^/]+",
     Rule(None, _USER_ROLES | {"HOPS_SERVICE_USER"}, project_roles=_ANY_MEMBER)),
    ("GET", r"/project/\d+/jobs", Rule(frozenset({"JOB"}), _USER_ROLES,
                                       frozenset({"api", "job"}), _ANY_MEMBER)),
    ("GET", r"/project/\d+/jobs/[^/]+/executions",
     Rule(frozenset({"JOB"}), _USER_ROLES, frozenset({"api", "job"}), _ANY_MEMBER)),
    ("POST", r"/project/\d+/jobs/[^/]+/executions",
     Rule(frozenset({"JOB"}), _USER_ROLES, frozenset({"api", "job"}), _ANY_MEMBER)),
    ("PUT", r"/project/\d+/jobs/[^/]+/executions/\d+/status",
     Rule(frozenset({"JOB"}), _USER_ROLES, frozenset({"api", "job"}), _ANY_MEMBER)),
    ("GET", r"/project/\d+/jupyter/stop", Rule(None, _USER_ROLES, project_roles=_ANY_MEMBER)),
    ("GET", r"/project/\d+/serving", Rule(frozenset({"SERVING"}), _USER_ROLES,
                                          frozenset({"api", "job"}), _ANY_MEMBER)),
    ("POST", r"/project/\d+/serving/\d+", Rule(frozenset({"SERVING"}), _USER_ROLES,
                                               frozenset({"api", "job"}), frozenset({OWNER}))),
]


@dataclass
class State:
    api_key: str
    auth_api_key: str
    version: str = "3.8.0"
    api_keys: dict[str, frozenset[str]] = field(default_factory=dict)
    signing_keys: set[str] = field(default_factory=set)
    tokens: dict[str, tuple[str, frozenset[str], str]] = field(default_factory=dict)
    token_expiry: dict[str, float] = field(default_factory=dict)
    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    projects: dict[int, dict[str, Any]] = field(default_factory=dict)
    old_project_list: bool = False  # answer GET /admin/projects like Hopsworks < 3.2
    namespace_key: str | None = None  # the admin list's namespace field (4.x); None: absent
    # how a member that was not added is reported: "exception" 400 FAILED_TO_ADD_MEMBER
    # (150081, v3.7.0 and later), or "fieldErrors" of a 200 (3.x before 3.7)
    members_failure: str = "exception"
    # enable_data_science_profile: false by default (Settings.java:3179), so serving is 400
    data_science_profile: bool = False
    max_num_projects: int = DEFAULT_MAX_NUM_PROJECTS  # the cluster's max_num_proj_per_user
    outage: int = 0  # answer the next N requests with 503
    outage_after: str | None = None  # path: once it succeeds, go down (outage = 1000)
    refuse: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    # "METHOD route" -> (status, error body): a call Hopsworks refuses (after authentication)
    requests: list[tuple[str, str]] = field(default_factory=list)
    last_project_id: int = 100
    users_listed: int = 0  # rows GET /admin/users has answered, all calls together
    hold: threading.Event | None = None  # set: creations stay ONGOING until it is set
    held: int = 0  # creations waiting in their ONGOING phase
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_user(self, email: str, first: str | None = "A", last: str | None = "B",
                 status: str = "ACTIVATED_ACCOUNT", max_projects: int | None = None,
                 roles: tuple[str, ...] = ("HOPS_USER",)) -> dict[str, Any]:
        """UsersController.registerUser: a generated username (8 chars of [a-z0-9],
        UsersController.java:469-505; the fake's are shorter) and the HOPS_USER group."""
        uid = 10000 + len(self.users) + 1
        base = re.sub(r"[^a-z]", "", email.split("@")[0].lower())[:8] or "user"
        user = {"id": uid, "email": email, "username": f"{base}{len(self.users):03d}",
                "firstname": first, "lastname": last, "status": status,
                "maxNumProjects": self.max_num_projects if max_projects is None
                else max_projects,
                "role": [{"groupName": r, "groupDesc": r.lower(), "gid": 1000 + i}
                         for i, r in enumerate(roles)]}
        self.users[uid] = user
        return user

    def user_by_email(self, email: str) -> dict[str, Any] | None:
        return next((u for u in self.users.values() if u["email"].lower() == email.lower()), None)

    def user_by_name(self, username: str) -> dict[str, Any] | None:
        if username == ADMIN_USER:  # the keys' owner (kept out of `users` to keep counts simple)
            return {"id": 10000, "username": ADMIN_USER, "email": "admin@hopsworks.ai"}
        return next((u for u in self.users.values() if u["username"] == username), None)

    def display_name(self, username: str) -> str:
        user = self.user_by_name(username) or {}
        return f"{user.get('firstname')} {user.get('lastname')}"

    def execution(self, project_id: int, execution_id: int) -> dict[str, Any]:
        return next(e for v in self.projects[project_id]["jobs"].values() for e in v
                    if e["id"] == execution_id)

    def start_execution(self, project_id: int, job: str, username: str, state: str = "RUNNING",
                        app_id: bool | None = None) -> int:
        executions = self.projects[project_id]["jobs"].setdefault(job, [])
        eid = 500 + sum(len(v) for p in self.projects.values() for v in p["jobs"].values())
        has_app = state != "INITIALIZING" if app_id is None else app_id
        executions.append({"id": eid, "state": state, "_user": username,
                           "appId": f"application_1700000000000_{eid:04d}" if has_app else None})
        return eid

    def owned_projects(self, email: str) -> int:
        return sum(1 for p in self.projects.values() if p["owner"] == email)

    def create_project(self, owner: dict[str, Any], name: Any,
                       services: list[str]) -> tuple[int, Any]:
        """ProjectController.createProjectDbMetadata (:599-607): the quota first, then the
        name."""
        limit = int(owner.get("maxNumProjects", DEFAULT_MAX_NUM_PROJECTS))
        if limit >= 0 and self.owned_projects(owner["email"]) >= limit:
            return 400, _error(150002, "You have reached the maximum number of projects you "
                                       "could create. Contact an administrator to increase "
                                       "your limit or delete some of the existing projects.")
        if any(str(p["name"]).lower() == str(name).lower() for p in self.projects.values()):
            return 409, _error(150001, "Project with the same name already exists.")
        self.last_project_id += 1  # AUTO_INCREMENT: ids of deleted projects are not reused
        pid = self.last_project_id
        self.projects[pid] = {"id": pid, "name": name, "owner": owner["email"],
                              "namespace": str(name).lower().replace("_", "-"),
                              "services": services, "members": {},
                              "creationStatus": "ONGOING",
                              "jobs": {}, "jupyter": set(), "servings": {}}
        if self.hold is not None and not self.hold.is_set():
            return 0, pid  # the handler finishes it once released (_finish_creation)
        self.finish_creation(pid)
        return 200, None

    def finish_creation(self, pid: int) -> None:
        """setProjectOwnerAndQuotas, then DONE (ProjectController.java:545)."""
        project = self.projects[pid]
        project["members"][project["owner"]] = OWNER
        project["creationStatus"] = "DONE"

    def user_view(self, username: str, expand: bool) -> dict[str, Any]:
        """UsersBuilder.build (:83-101): a link, and the user's fields when expanded."""
        user = self.user_by_name(username) or {"id": 0}
        view: dict[str, Any] = {"href": f"{PREFIX}/users/{user['id']}"}
        if expand:
            view.update(firstname=user.get("firstname"), lastname=user.get("lastname"),
                        email=user.get("email"), username=user.get("username"))
        return view

    def jwt_with_api_keys(self) -> bool:
        major_minor = tuple(int(p) for p in self.version.split("-")[0].split(".")[:2])
        return major_minor >= (3, 7)


class FakeHopsworks:
    def __init__(self, api_key: str = "hw-secret-key", auth_api_key: str = "hw-auth-key",
                 version: str = "3.8.0", ssl_context: ssl.SSLContext | None = None) -> None:
        self.state = State(api_key=api_key, auth_api_key=auth_api_key, version=version)
        self.state.api_keys = {api_key: ADMIN_SCOPES, auth_api_key: frozenset({"AUTH"})}
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.scheme = "http"
        if ssl_context is not None:
            self.server.socket = ssl_context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.server.serve_forever,  # stops within 0.05 s
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"  # where __init__ binds it

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def hold_creation(self) -> threading.Event:
        """From now on a ``createas`` stores its row ONGOING and answers only once the
        returned event is set (what a real cluster does for the minute or two it builds a
        project); set it to let every held creation finish."""
        with self.state.lock:
            self.state.hold = threading.Event()
            return self.state.hold

    def fail_next(self, n: int) -> None:
        with self.state.lock:
            self.state.outage = n

    # -- what customers do on the cluster (for the suspension tests) --------------------------

    def run_job(self, project_id: int, job: str, username: str, state: str = "RUNNING",
                app_id: bool | None = None) -> int:
        """An execution of ``job`` by ``username``; it has a YARN appId unless it is still
        INITIALIZING (or ``app_id`` says otherwise)."""
        with self.state.lock:
            return self.state.start_execution(project_id, job, username, state, app_id)

    def give_app_id(self, project_id: int, execution_id: int) -> None:
        """What YARN does a moment after submission: the execution gets its appId."""
        with self.state.lock:
            execution = self.state.execution(project_id, execution_id)
            execution["appId"] = f"application_1700000000000_{execution_id:04d}"
            execution["state"] = "RUNNING"

    def login(self, username: str) -> str:
        """A browser session's token (JWTHelper.java:241-247: UI tokens share one signing
        key, so none is revoked per user; JWTRenewFilter renews it while in use). Login
        checks the status (AuthController.java:189-195): a deactivated user cannot log in,
        but a token obtained before the deactivation keeps working."""
        with self.state.lock:
            user = self.state.user_by_name(username)
            assert user is not None
            if user["status"] == "DEACTIVATED_ACCOUNT":
                raise PermissionError(f"{username} is deactivated (login refused)")
            self.state.signing_keys.add(UI_SIGNING_KEY)
            token = secrets.token_urlsafe(24)
            self.state.tokens[token] = (username, frozenset({"api"}), UI_SIGNING_KEY)
            self.state.token_expiry[token] = time.time() + 86400
            return token

    def create_project_as(self, username: str, name: str) -> tuple[int, Any]:
        """A user creating a project of their own in the UI (``POST /project``, the same
        ProjectController.createProject as ``createas``): refused beyond their quota."""
        with self.state.lock:
            user = self.state.user_by_name(username)
            assert user is not None
            return self.state.create_project(user, name, ["JOBS", "JUPYTER"])

    def start_jupyter(self, project_id: int, username: str) -> None:
        with self.state.lock:
            self.state.projects[project_id]["jupyter"].add(username)

    def deploy(self, project_id: int, name: str, creator: str, status: str = "Running") -> int:
        """A deployment made by the user ``creator`` (a username); the API shows its
        creator as "First Last" (ServingView.java:98-99)."""
        with self.state.lock:
            sid = 700 + sum(len(p["servings"]) for p in self.state.projects.values())
            self.state.projects[project_id]["servings"][sid] = {
                "id": sid, "name": name, "status": status, "_creator": creator}
            return sid


    # -- kept between runs of `hopsplane dev` ----------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The users and projects as JSON-able data (what a real cluster keeps on disk), so
        that a restarted stand-in still knows the projects the database points at."""
        with self.state.lock:
            projects = {str(pid): {**p, "jupyter": sorted(p["jupyter"]),
                                   "servings": {str(k): v for k, v in p["servings"].items()}}
                        for pid, p in self.state.projects.items()}
            return {"users": {str(uid): u for uid, u in self.state.users.items()},
                    "projects": projects, "last_project_id": self.state.last_project_id}

    def restore(self, data: dict[str, Any]) -> None:
        """What :meth:`snapshot` gave, back in place (projects left ONGOING by a stop in the
        middle of a creation are finished, as Hopsworks' own restart does not: good enough
        for a development stand-in)."""
        with self.state.lock:
            self.state.users = {int(uid): u for uid, u in data.get("users", {}).items()}
            self.state.projects = {
                int(pid): {**p, "jupyter": set(p.get("jupyter", ())),
                           "servings": {int(k): v for k, v in p.get("servings", {}).items()}}
                for pid, p in data.get("projects", {}).items()}
            self.state.last_project_id = int(data.get("last_project_id", 100))
            for pid, project in self.state.projects.items():
                if project.get("creationStatus") != "DONE":
                    self.state.finish_creation(pid)


UI_SIGNING_KEY = "hopsworks-ui"

JWT_LIFETIME_SECONDS = 1800
"""Hopsworks' default ``jwt_lifetime_ms`` (1800000, ``common/util/Settings.java``), used by
``JWTHelper.createToken`` when the request has no ``expiresAt`` (JWTHelper.java:268-271)."""


def _jwt_expiry(value: object) -> float | None:
    """The token's expiry as ``JWTHelper.createToken`` decides it; None when
    ``DateTimeAdapter`` (SimpleDateFormat ``yyyy-MM-dd'T'HH:mm:ss.SSSZ``) cannot parse it."""
    if value is None:
        return time.time() + JWT_LIFETIME_SECONDS
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
    except ValueError:
        return None


def _jwt_date(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _error(code: int, message: str, user_message: str | None = None) -> dict[str, Any]:
    return {"errorCode": code, "errorMsg": message, "usrMsg": user_message or message}


_UNSUPPORTED = (401, _error(200003, "Authorization method not supported."))


class _Handler(BaseHTTPRequestHandler):
    state: State

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            return {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        return json.loads(raw)

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        path, query = parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}
        body = self._body()
        with self.state.lock:
            self.state.requests.append((method, path))
            if self.state.outage > 0:
                self.state.outage -= 1
                self._send(503, _error(120000, "Service unavailable"))
                return
            if not path.startswith(PREFIX):
                self._send(404, _error(0, "not found"))
                return
            route = path[len(PREFIX):]
            rule = next((r for m, p, r in ROUTES if m == method and re.fullmatch(p, route)), None)
            if rule is None:
                self._send(404, _error(0, f"no route {method} {route}"))
                return
            denied, principal = self._authenticate(route, rule)
            if denied is not None:
                self._send(*denied)
                return
            refused = self.state.refuse.get(f"{method} {route}")
            status, answer = refused or self._route(method, route, query, body, principal)
            if status == 0:  # a creation held in its ONGOING phase: wait outside the lock
                held, pid = self.state.hold, int(cast(int, answer))
                self.state.held += 1
            else:
                if status < 300 and self.state.outage_after == f"{method} {path}":
                    self.state.outage, self.state.outage_after = 1000, None
                self._send(status, answer)
                return
        assert held is not None
        held.wait(30)
        with self.state.lock:
            self.state.held -= 1
            self.state.finish_creation(pid)
        with contextlib.suppress(OSError):  # the client gave up waiting (its timeout):
            self._send(200, None)  # Hopsworks finishes the build anyway

    def _authenticate(self, route: str, rule: Rule) -> tuple[tuple[int, Any] | None, str | None]:
        s = self.state
        api_scopes = rule.api_scopes
        if route.startswith("/jwt") and not s.jwt_with_api_keys():
            api_scopes = None  # before v3.7.0: @JWTRequired only
        if api_scopes is None and rule.jwt_roles is None:
            return None, None  # e.g. /variables/versions
        header = self.headers.get("Authorization")
        if header is None:
            return (401, _error(200003, "Authorization header not set.")), None
        if header.startswith("ApiKey "):
            if api_scopes is None:
                return _UNSUPPORTED, None
            scopes = s.api_keys.get(header[len("ApiKey "):].strip())
            if scopes is None:
                return (401, _error(320002, "Api key not found")), None
            if not scopes & api_scopes:
                return (403, _error(320004, "No valid scope found for this invocation")), None
            principal = ADMIN_USER
        elif header.startswith("Bearer "):
            if rule.jwt_roles is None:
                return _UNSUPPORTED, None
            token = s.tokens.get(header[len("Bearer "):].strip())
            if token is None or token[2] not in s.signing_keys:
                return (401, _error(200003, "Invalidated token.")), None
            if s.token_expiry.get(header[len("Bearer "):].strip(), 0) + 60 < time.time():
                # java-jwt's verifier with acceptExpiresAt(expLeeway): JWTFilter.java:78-95
                return (401, _error(200003, "The Token has expired.")), None
            subject, audiences, _key = token
            if "HOPS_USER" not in rule.jwt_roles:  # tokens of /jwt carry HOPS_USER only
                return (403, _error(200014, "Client not authorized for this invocation.")), None
            if not audiences & rule.jwt_audiences:
                return (403, _error(200014, "Token not issued for this recipient.")), None
            principal = subject
        else:
            return (401, _error(200003, "Invalidated token.")), None
        if rule.project_roles is None:
            return None, principal
        project = s.projects.get(int(route.split("/")[2]))
        if project is None:
            return (404, _error(150004, "Project wasn't found.")), None
        user = s.user_by_name(principal)
        if user is None:
            return (401, _error(200003, "Unauthorized invocation")), None
        role = project["members"].get(user["email"])
        if role is None:
            return (403, _error(160000, "No valid role found for this user")), None
        if role not in rule.project_roles:
            return (403, _error(150068, "Your project role does not allow to perform this "
                                        "action.")), None
        return None, principal

    def _route(self, method: str, path: str, q: dict[str, str], body: Any,
               principal: str | None) -> tuple[int, Any]:
        s = self.state
        if path == "/variables/versions":
            return 200, [{"software": "hopsworks", "version": s.version},
                         {"software": "kafka", "version": "2.8.1"}]
        if method == "POST" and path == "/admin/users":
            if q.get("accountType") != "M_ACCOUNT_TYPE" or not q.get("email"):
                return 400, _error(160014, "Invalid account type or email")
            if s.user_by_email(q["email"]):
                return 409, _error(160003,
                                   "There is an existing account associated with this email")
            asked = int(q.get("maxNumProjects") or 0)  # 0: the default (:305)
            user = s.add_user(q["email"], q.get("givenName"), q.get("surname"),
                              q.get("status", "TEMP_PASSWORD"),
                              asked if asked > 0 else s.max_num_projects)
            return 201, {**user, "password": "generated"}
        if method == "GET" and path == "/admin/users":
            users = list(s.users.values())
            wanted = q.get("filter_by", "")
            if wanted:
                field_name, _, value = wanted.partition(":")
                if field_name.upper() != "USER_EMAIL":
                    return 400, _error(120001, "An argument was not provided or it was "
                                               "malformed.")
                users = [u for u in users if u["email"].upper().startswith(value.upper())]
            if q.get("sort_by", "").lower() == "email:asc":
                users.sort(key=lambda u: u["email"].lower())
            else:  # no ORDER BY: whatever order the database reads the rows in
                random.shuffle(users)
            offset = int(q.get("offset", 0))
            limit = int(q["limit"]) if q.get("limit") else len(users)
            page = [{**u, "numActiveProjects": s.owned_projects(u["email"])}
                    for u in users[offset:offset + limit]]
            s.users_listed += len(page)
            return 200, {"items": page, "count": len(users)}
        m = re.fullmatch(r"/admin/users/(\d+)", path)
        if method == "PUT" and m:
            target = s.users.get(int(m.group(1)))
            if target is None:
                return 404, _error(160002, "User not found")
            target["status"] = (body or {}).get("status", target["status"])
            if (body or {}).get("maxNumProjects") is not None:  # UserProfileBuilder:190-192
                target["maxNumProjects"] = int(body["maxNumProjects"])
            return 200, target
        if method == "POST" and path == "/admin/projects/createas":
            return self._createas(body or {})
        m = re.fullmatch(r"/project/(\d+)", path)
        if method == "GET" and m:  # ProjectService.findByProjectID -> ProjectDTO
            project = s.projects[int(m.group(1))]
            return 200, {"projectId": project["id"], "projectName": project["name"],
                         "owner": project["owner"],
                         "creationStatus": project["creationStatus"]}
        if method == "GET" and path == "/admin/projects" and s.old_project_list:
            return 200, [{"projectId": p["id"], "projectName": p["name"],
                          "projectOwner": p["owner"]} for p in s.projects.values()]
        if method == "GET" and path == "/admin/projects":  # ProjectsAdminBuilder
            items = []
            for p in s.projects.values():
                owner = s.user_by_email(p["owner"]) or {"username": ADMIN_USER}
                item = {"href": f"/admin/projects/{p['id']}", "id": p["id"], "name": p["name"],
                        "creator": s.user_view(owner["username"],
                                               "creator" in q.get("expand", "").lower())}
                if s.namespace_key:
                    item[s.namespace_key] = p["namespace"]
                items.append(item)
            return 200, {"href": "/admin/projects", "count": len(items), "items": items}
        if path == "/jwt":
            body = body or {}
            if not body.get("keyName") or not body.get("audiences") or not body.get("subject"):
                return 200, None  # JWTHelper.createToken returns null
            if body["keyName"] in s.signing_keys:
                return 409, _error(200015, "A signing key with the same name already exists.")
            expires = _jwt_expiry(body.get("expiresAt"))
            if expires is None:  # DateTimeAdapter.unmarshal threw: Jersey cannot read the body
                return 400, _error(120001, "An argument was not provided or it was malformed.")
            s.signing_keys.add(body["keyName"])
            token = secrets.token_urlsafe(24)
            s.tokens[token] = (body["subject"], frozenset(str(body["audiences"]).split(",")),
                               body["keyName"])
            s.token_expiry[token] = expires
            return 200, {"token": token, "expiresAt": _jwt_date(expires), "expLeeway": 60}
        m = re.fullmatch(r"/jwt/key/([^/]+)", path)
        if m:
            s.signing_keys.discard(unquote(m.group(1)))
            return 200, None
        project = s.projects[int(path.split("/")[2])]
        m = re.fullmatch(r"/project/\d+/projectMembers(?:/(.+))?", path)
        if m:
            return self._members(method, project, unquote(m.group(1) or ""), body, principal)
        return self._workloads(method, path, project, q, principal)

    def _createas(self, body: dict[str, Any]) -> tuple[int, Any]:
        s = self.state
        owner = s.user_by_name(body.get("owner") or "")  # findByUsername
        if owner is None:
            return 400, _error(160001, "User does not exist.")
        services = [str(x).upper() for x in body.get("services") or []]
        unknown = [x for x in services if x not in SERVICES]
        if unknown:  # ILLEGAL_ARGUMENT is 422 (RESTCodes.java:805-806)
            return 422, _error(120001, "An argument was not provided or it was malformed.",
                               f"No enum constant ProjectServiceEnum.{unknown[0]}")
        return s.create_project(owner, body.get("projectName"), services)

    def _members(self, method: str, project: dict[str, Any], email: str, body: Any,
                 principal: str | None) -> tuple[int, Any]:
        s = self.state
        if method == "POST" and not email:
            failed = []
            for team in (body or {}).get("projectTeam", []):
                who = team["projectTeamPK"]["teamMember"]
                role = team.get("teamRole") if team.get("teamRole") in (OWNER, SCIENTIST) \
                    else SCIENTIST
                if s.user_by_email(who) is None:
                    failed.append(f"{who} was not found in the system.")
                elif who in project["members"]:
                    failed.append(f"{who} is already a member in this project.")
                else:
                    project["members"][who] = role
            if failed and s.members_failure == "exception":
                return 400, _error(150081, "Failed to add member.",
                                   f"Failed to add a member. Member {failed[0]} was not added.")
            answer: dict[str, Any] = {"successMessage": "Member added."}
            if failed:
                answer["fieldErrors"] = failed
            return 200, answer
        if method == "POST":
            role = (body or {}).get("role")
            if role not in (OWNER, SCIENTIST):
                return 400, _error(120001, "An argument was not provided or it was malformed.",
                                   "Role was not provided.")
            if email == project["owner"]:
                return 403, _error(150014, "Changing the role of the project owner is not "
                                           "allowed.")
            if email not in project["members"]:
                return 404, _error(150023, "The selected user is not a team member in this "
                                           "project.")
            project["members"][email] = role
            return 200, {"successMessage": "Role updated successfully."}
        if email not in project["members"]:
            return 404, _error(150023, "The selected user is not a team member in this project.")
        caller = s.user_by_name(principal or "")
        if caller and project["members"].get(caller["email"]) == SCIENTIST \
                and caller["email"] != email:
            return 403, _error(150012, "Your project role does not allow to remove other "
                                       "members from this project.")
        del project["members"][email]
        return 200, {"successMessage": "Member removed from team."}

    def _workloads(self, method: str, path: str, project: dict[str, Any], q: dict[str, str],
                   principal: str | None) -> tuple[int, Any]:
        offset, limit = int(q.get("offset", 0)), int(q.get("limit", 100))
        if re.fullmatch(r"/project/\d+/jobs", path):
            jobs = [{"name": n} for n in sorted(project["jobs"])]
            return 200, {"items": jobs[offset:offset + limit], "count": len(jobs)}
        m = re.fullmatch(r"/project/\d+/jobs/([^/]+)/executions(?:/(\d+)/status)?", path)
        if m:
            executions = project["jobs"].get(unquote(m.group(1)))
            if executions is None:
                return 404, _error(130009, "Job not found.")
            expand = "user" in q.get("expand", "").lower()
            if m.group(2):
                execution = next((e for e in executions if e["id"] == int(m.group(2))), None)
                if execution is None:
                    return 404, _error(130007, "Execution not found.")
                # AbstractExecutionController.stopExecution (:206-224): only with an appId
                if execution["appId"] is not None and execution["state"] in RUNNING:
                    execution["state"] = "KILLED"
                return 202, self._execution(execution, False)
            if method == "POST":
                eid = self.state.start_execution(project["id"], unquote(m.group(1)),
                                                 str(principal), "INITIALIZING")
                return 201, self._execution(self.state.execution(project["id"], eid), False)
            wanted = q.get("filter_by", "")
            states = set(wanted.split(":", 1)[1].upper().split(",")) if wanted else None
            found = [self._execution(e, expand) for e in executions
                     if states is None or e["state"] in states]
            return 200, {"items": found[offset:offset + limit], "count": len(found)}
        if path.endswith("/jupyter/stop"):
            if principal not in project["jupyter"]:
                return 404, _error(100033, "Could not find any Jupyter notebook servers for "
                                           "this project.")
            project["jupyter"].discard(principal)
            return 200, None
        if "/serving" in path and not self.state.data_science_profile:
            return FEATURE_FLAG_NOT_ENABLED  # FeatureFlagFilter.java:53-64
        if re.fullmatch(r"/project/\d+/serving", path):
            return 200, [{k: v for k, v in d.items() if k != "_creator"}
                         | {"creator": self.state.display_name(d["_creator"])}
                         for d in project["servings"].values()]
        serving = project["servings"].get(int(path.rsplit("/", 1)[1]))
        if serving is None:
            return 404, _error(240000, "Serving instance not found")
        if q.get("action") not in ("START", "STOP"):
            return 400, _error(120001, "An argument was not provided or it was malformed.")
        serving["status"] = "Stopped" if q["action"] == "STOP" else "Starting"
        return 200, None

    def _execution(self, execution: dict[str, Any], expand: bool) -> dict[str, Any]:
        shown = {k: v for k, v in execution.items() if k != "_user"}
        return shown | {"user": self.state.user_view(execution["_user"], expand)}

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")
