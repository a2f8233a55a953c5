"""SQL of publishing account events. The queue's table is the worker's: an event is
queued through ``hopsplane.publish_event`` (revision 0025), the one publish point that the
ledger's set-based statements call too. People are read from the accounts' published view
``hopsplane.account_members``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session
from sqlalchemy.sql import bindparam

from hopsplane.notices.schemas import Person

_PUBLISH_MANY = text(
    """
    SELECT hopsplane.publish_event(e.kind, e.account, e.key, e.payload)
    FROM unnest(CAST(:kinds AS text[]), CAST(:accounts AS text[]), CAST(:keys AS text[]),
                CAST(:payloads AS jsonb[])) WITH ORDINALITY AS e(kind, account, key, payload, n)
    ORDER BY e.n
    """
)

_PUBLISH_ONE = text(
    "SELECT hopsplane.publish_event(:kind, :account, :key, :payload)"
).bindparams(bindparam("payload", type_=JSONB))


def publish(session: Session, kind: str, account: str, key: str, payload: dict[str, Any]
            ) -> int | None:
    """The notice job's id, or None when this event was published before."""
    value = session.execute(
        _PUBLISH_ONE, {"kind": kind, "account": account, "key": key, "payload": payload}
    ).scalar_one()
    return None if value is None else int(value)


def publish_many(session: Session, events: list[tuple[str, str, str, str]]) -> list[int | None]:
    """Publish (kind, account, key, payload as JSON text) in one statement, in order."""
    rows = session.execute(_PUBLISH_MANY, {
        "kinds": [e[0] for e in events], "accounts": [e[1] for e in events],
        "keys": [e[2] for e in events], "payloads": [e[3] for e in events],
    })
    return [None if r[0] is None else int(r[0]) for r in rows]


def people(session: Session, user_ids: list[str]) -> dict[str, Person]:
    rows = session.execute(
        text("SELECT user_id, email, name FROM hopsplane.account_members "
             "WHERE user_id = ANY(CAST(:ids AS text[]))"),
        {"ids": user_ids},
    )
    return {r[0]: Person(r[0], r[1], r[2]) for r in rows}
