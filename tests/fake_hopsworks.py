"""A local HTTP server that answers like the Hopsworks admin REST API (the parts hopsplane
uses): real HTTP on 127.0.0.1, ApiKey authentication, JSON error bodies with errorCode,
409 on existing users and projects, and injectable outages (503) for retry tests. Shapes
as in the Hopsworks sources of 3.2 to 4.0 (see docs/hopsworks.md): createas by owner
username answering 200 with no body, the project list as {"items", "count"}, members
not added reported in fieldErrors of a 200."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

PREFIX = "/hopsworks-api/api"


@dataclass
class State:
    api_key: str
    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    projects: dict[int, dict[str, Any]] = field(default_factory=dict)
    old_project_list: bool = False  # answer GET /admin/projects like Hopsworks < 3.2
    # how a member that was not added is reported: "fieldErrors" of a 200 (3.x), or
    # "exception": 400 FAILED_TO_ADD_MEMBER (150081) with the reason in usrMsg (newest main)
    members_failure: str = "fieldErrors"
    outage: int = 0  # answer the next N requests with 503
    outage_after: str | None = None  # path: once it succeeds, go down (outage = 1000)
    requests: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def user_by_email(self, email: str) -> dict[str, Any] | None:
        return next((u for u in self.users.values() if u["email"].lower() == email.lower()), None)


class FakeHopsworks:
    def __init__(self, api_key: str = "hw-secret-key") -> None:
        self.state = State(api_key=api_key)
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail_next(self, n: int) -> None:
        with self.state.lock:
            self.state.outage = n


def _error(code: int, message: str, user_message: str | None = None) -> dict[str, Any]:
    return {"errorCode": code, "errorMsg": message, "usrMsg": user_message or message}


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
        return json.loads(self.rfile.read(length)) if length else None

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
            if self.headers.get("Authorization") != f"ApiKey {self.state.api_key}":
                self._send(401, _error(200003, "Authorization header not set or invalid"))
                return
            if not path.startswith(PREFIX):
                self._send(404, _error(0, "not found"))
                return
            status, answer = self._route(method, path[len(PREFIX):], query, body)
            if status < 300 and self.state.outage_after == f"{method} {path}":
                self.state.outage, self.state.outage_after = 1000, None
            self._send(status, answer)

    def _route(self, method: str, path: str, q: dict[str, str], body: Any) -> tuple[int, Any]:
        s = self.state
        if method == "POST" and path == "/admin/users":
            if q.get("accountType") != "M_ACCOUNT_TYPE" or not q.get("email"):
                return 400, _error(160014, "Invalid account type or email")
            if s.user_by_email(q["email"]):
                return 409, _error(160003, "There is an existing account associated with this email")
            uid = 10000 + len(s.users) + 1
            base = re.sub(r"[^a-z]", "", q["email"].split("@")[0].lower())[:8] or "user"
            user = {"id": uid, "email": q["email"], "username": f"{base}{len(s.users):03d}",
                    "firstname": q.get("givenName"), "lastname": q.get("surname"),
                    "status": q.get("status", "TEMP_PASSWORD")}
            s.users[uid] = user
            return 201, {**user, "password": "generated"}
        if method == "GET" and path == "/admin/users":
            users = sorted(s.users.values(), key=lambda u: u["id"])
            offset, limit = int(q.get("offset", 0)), int(q.get("limit", 10))
            return 200, {"items": users[offset:offset + limit], "count": len(users)}
        m = re.fullmatch(r"/admin/users/(\d+)", path)
        if method == "PUT" and m:
            user = s.users.get(int(m.group(1)))
            if user is None:
                return 404, _error(160002, "User not found")
            user["status"] = (body or {}).get("status", user["status"])
            return 200, user
        if method == "POST" and path == "/admin/projects/createas":
            # the owner is a username (findByUsername); 200 with no body (Hopsworks >= 3.2)
            wanted = (body or {}).get("owner") or ""
            owner = next((u for u in s.users.values() if u["username"] == wanted), None)
            if owner is None:
                return 400, _error(160001, "User does not exist.")
            name = body.get("projectName")
            if any(p["name"] == name for p in s.projects.values()):
                return 409, _error(150001, "Project with the same name already exists.")
            pid = 100 + len(s.projects) + 1
            s.projects[pid] = {"id": pid, "name": name, "owner": owner["email"],
                               "members": {owner["email"]}}
            return 200, None
        if method == "GET" and path == "/admin/projects" and s.old_project_list:
            return 200, [{"projectId": p["id"], "projectName": p["name"],
                          "projectOwner": p["owner"]} for p in s.projects.values()]
        if method == "GET" and path == "/admin/projects":  # ProjectsAdminBuilder
            items = [{"href": f"/admin/projects/{p['id']}", "id": p["id"], "name": p["name"],
                      "creator": {"email": p["owner"]}} for p in s.projects.values()]
            return 200, {"href": "/admin/projects", "count": len(items), "items": items}
        m = re.fullmatch(r"/project/(\d+)/projectMembers(?:/(.+))?", path)
        if m:
            project = s.projects.get(int(m.group(1)))
            if project is None:
                return 404, _error(150004, "Project wasn't found.")
            if method == "POST":  # 200 even for members not added; fieldErrors say why
                failed = []
                for team in (body or {}).get("projectTeam", []):
                    email = team["projectTeamPK"]["teamMember"]
                    if s.user_by_email(email) is None:
                        failed.append(f"{email} was not found in the system.")
                    elif email in project["members"]:
                        failed.append(f"{email} is already a member in this project.")
                    else:
                        project["members"].add(email)
                answer: dict[str, Any] = {"successMessage": "Member added."}
                if failed and s.members_failure == "exception":
                    return 400, _error(150081, "Failed to add member.",
                                       f"Failed to add a member. Member {failed[0]} was not added.")
                if failed:
                    answer["fieldErrors"] = failed
                return 200, answer
            if method == "DELETE" and m.group(2):
                email = unquote(m.group(2))
                if email not in project["members"]:
                    return 404, _error(150006, "Team member not found")
                project["members"].discard(email)
                return 200, {"successMessage": "Member removed"}
        return 404, _error(0, f"no route {method} {path}")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")
