"""Who acts: a small value the edges make (the HTTP principal, the operator's CLI, a worker
job) and bind to the transaction they open, so that a service deep below records the
decision as theirs without every signature in between carrying it."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.orm import Session, sessionmaker

ActorKind = Literal["person", "api_key", "operator_cli", "system"]
ACTOR_KINDS: tuple[ActorKind, ...] = ("person", "api_key", "operator_cli", "system")

_INFO_KEY = "hopsplane.audit.actor"


@dataclass(frozen=True, slots=True)
class Actor:
    """``id``: a user id (person), a key id (api_key), the operator's login (operator_cli)
    or the job's name (system). ``source``: the client address, ``"cli"`` or the job."""

    kind: ActorKind
    id: str
    source: str
    request_id: str | None = None

    @classmethod
    def person(cls, user_id: str, ip: str | None, request_id: str | None = None) -> Actor:
        return cls("person", user_id, ip or "unknown", request_id)

    @classmethod
    def api_key(cls, key_id: str, ip: str | None, request_id: str | None = None) -> Actor:
        return cls("api_key", key_id, ip or "unknown", request_id)

    @classmethod
    def operator(cls, login: str | None = None) -> Actor:
        return cls("operator_cli", login or _login(), "cli")

    @classmethod
    def system(cls, job: str) -> Actor:
        return cls("system", job, job)


SYSTEM = Actor.system("system")
"""Whom a decision is recorded as when no edge said who acts (a scheduled rule)."""


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in a container
        return "unknown"


def bind(session: Session, actor: Actor) -> None:
    """Every decision recorded in this session's transactions is ``actor``'s."""
    session.info[_INFO_KEY] = actor


def bind_sessions(sessions: sessionmaker[Session], actor: Actor) -> None:
    """Every session the factory makes from now on acts as ``actor`` (a CLI command: one
    operator for the whole command)."""
    sessions.configure(info={_INFO_KEY: actor})


def bound(session: Session) -> Actor | None:
    actor = session.info.get(_INFO_KEY)
    return actor if isinstance(actor, Actor) else None
