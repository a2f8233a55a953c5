"""How Hopsworks refuses: the error codes hopsplane acts on, the refusals that mean "done
already", the errors a call raises, and reading an answer's JSON.

Shared by the admin client (:mod:`hopsplane.integrations.hopsworks.client`) and the calls
made as a project's user (:mod:`hopsplane.integrations.hopsworks.owner`), so that neither of
those imports the other for them: the client imports ``owner`` (it hands out an
``OwnerSession``), ``owner`` imports only this module (a lint-imports contract in
pyproject.toml keeps the direction).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from hopsplane.errors import AppError, Unavailable

USER_EXISTS = 160003
PROJECT_EXISTS = 150001
ALREADY_MEMBER = 150024  # RESTCodes.ProjectErrorCode.TEAM_MEMBER_ALREADY_EXISTS; HTTP 400
DUPLICATE_KEY_ERROR = 200015  # a signing key of that name exists (a re-sent POST /jwt)
FAILED_TO_ADD_MEMBER = 150081  # ProjectMembersService since 2.5: not added, reason in usrMsg
ALREADY_MEMBER_TEXT = "already a member"


@dataclass(frozen=True, slots=True)
class AlreadyDone:
    name: str
    http_status: int
    source: str
    text: str | None = None  # the answer counts only when its message says this


ALREADY_DONE: dict[int, AlreadyDone] = {
    USER_EXISTS: AlreadyDone(
        "USER_EXISTS", 409, "RESTCodes.java:921, thrown by UserValidator.java:110-112 "
        "(POST /admin/users); the user is then looked up by email"),
    ALREADY_MEMBER: AlreadyDone(
        "TEAM_MEMBER_ALREADY_EXISTS", 400, "RESTCodes.java:102-103 (project members)"),
    FAILED_TO_ADD_MEMBER: AlreadyDone(
        "FAILED_TO_ADD_MEMBER", 400, "RESTCodes.java:197; ProjectMembersService.java:160-172 "
        "puts ProjectController.java:1845,1848's reason in usrMsg", ALREADY_MEMBER_TEXT),
}
"""The only refusals that mean "what you asked for is done already" (error code -> name,
status, source in logicalclocks/hopsworks master, and for a code that has several reasons
the words that make it this one), each accepted only by the call that names it
(``exists_codes``). Every other 409 is an error with its code: PROJECT_EXISTS 150001
(``RESTCodes.java:65``) says only that *a* project of that name exists, maybe still being
built, maybe not ours (see ``create_project``); DUPLICATE_KEY_ERROR 200015
(``RESTCodes.java:876``) means a ``POST /jwt`` was sent twice."""


def already_done(code: int | None, message: str, exists_codes: frozenset[int] | set[int]) -> bool:
    entry = ALREADY_DONE.get(code) if code is not None and code in exists_codes else None
    return entry is not None and (entry.text is None or entry.text in message)
NUM_PROJECTS_LIMIT_REACHED = 150002  # RESTCodes.ProjectErrorCode; HTTP 400
NO_ROLE_FOUND = 160000  # ProjectAuthFilter: the caller is not a member of the project; 403
FEATURE_FLAG_NOT_ENABLED = 120012  # FeatureFlagFilter: e.g. serving without the DS profile


class HopsworksUnavailable(Unavailable):
    """Hopsworks could not be reached or kept failing (5xx) after the retries."""


class HopsworksRejected(AppError):
    """Hopsworks refused the request (a 4xx other than "already exists")."""

    status = 502

    def __init__(self, message: str, *, http_status: int, error_code: int | None) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.error_code = error_code


class ProjectNotReady(Unavailable):
    """The account's project is listed but not usable yet (Hopsworks is still building it,
    ``creationStatus`` ONGOING, or its owner is not yet its member) or it vanished (a failed
    creation is cleaned up): the job is retried, with its backoff, until it is."""


class HopsworksMisconfigured(AppError):
    """The cluster cannot do what provisioning needs until an operator acts: no AUTH key,
    a key without the AUTH scope, or a Hopsworks older than 3.7 (no API-key ``/jwt``).
    Retrying does not help; provisioning reports it on the cluster instead."""

    status = 503


def json_body(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object; {} for anything else (an empty body, HTML of a proxy)."""
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def error_code(response: httpx.Response) -> int | None:
    code = json_body(response).get("errorCode")
    try:
        return None if code is None else int(code)
    except (TypeError, ValueError):
        return None


def error_message(response: httpx.Response) -> str:
    body = json_body(response)
    message = body.get("usrMsg") or body.get("errorMsg") or response.text[:200]
    return str(message)
