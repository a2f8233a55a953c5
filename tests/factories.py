"""The one module of test data: users, clusters, ledger postings, usage rows and events,
and the recording account hooks. Tests and fixtures import from here (never from another
test module or a conftest)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.orm import Session

from hopsplane.clusters import service as clusters
from hopsplane.clusters.hooks import ClusterHooks
from hopsplane.clusters.schemas import ClusterCreate, ClusterOut
from hopsplane.credits import service as credits
from hopsplane.credits.rules import EntryType
from hopsplane.credits.schemas import Posting, PostResult
from hopsplane.crypto import SecretBox
from hopsplane.db.engine import Database
from hopsplane.db.models import UsageTracking, User
from hopsplane.hooks import Listeners
from hopsplane.http.session_cookie import CookieSigner, session_cookie
from hopsplane.legacy import service as legacy
from hopsplane.legacy.generate import generate
from hopsplane.sessions import service as web_sessions
from hopsplane.sessions.schemas import SessionIdentity
from hopsplane.usage.schemas import UsageEventIn
from tests.pg import PgServer

TEST_ENCRYPTION_KEY = "dGVzdC1rZXktZm9yLWhvcHNwbGFuZS10ZXN0cy0zMmI="
_BOX = SecretBox([TEST_ENCRYPTION_KEY])

# --- users ---


def make_user(
    session: Session,
    *,
    owner: str | None = None,
    admin: bool = False,
    cluster: uuid.UUID | None = None,
    project_id: int | None = None,
    project_name: str | None = None,
) -> str:
    """A user (an account owner, or a member of ``owner``'s account), optionally with a
    Hopsworks project and, for an owner, placed on ``cluster``."""
    uid = f"auth0|{uuid.uuid4().hex[:12]}"
    session.add(User(
        id=uid, email=f"{uid[6:]}@example.com", account_owner_id=owner,
        is_platform_admin=admin, hopsworks_project_id=project_id,
        metadata_={"hopsworks_project_name": project_name} if project_name else {},
    ))
    session.flush()
    if cluster is not None and owner is None:
        assign(session, uid, cluster)
    return uid


def committed_user(db: Database, owner: str | None = None) -> str:
    """A user in a transaction of its own (for tests that drive the app)."""
    with db.transaction() as s:
        return make_user(s, owner=owner)


# --- clusters ---


def make_cluster(session: Session, metadata: dict[str, Any] | None = None) -> uuid.UUID:
    return add_cluster(
        session, _BOX, f"c-{uuid.uuid4().hex[:6]}", api_key="key", metadata=metadata
    ).id


def add_cluster(
    session: Session, box: SecretBox, name: str, max_users: int = 10,
    api_url: str = "https://hw.example.com", api_key: str = "hw-secret-key",
    metadata: dict[str, Any] | None = None, auth_api_key: str | None = "hw-auth-key",
) -> ClusterOut:
    """A cluster registered through the clusters service (with both API keys unless
    ``auth_api_key`` is None)."""
    return clusters.register_cluster(
        session, box,
        ClusterCreate(name=name, api_url=api_url, api_key=SecretStr(api_key),
                      max_users=max_users, metadata=metadata or {},
                      auth_api_key=SecretStr(auth_api_key) if auth_api_key else None),
    )


class Clock:
    """Real time plus an offset the test moves forward (to make retries due)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def user(db: Database, user_id: str) -> User:
    """A user as committed (for tests that drive the worker)."""
    with db.transaction() as s:
        found = s.get(User, user_id)
        assert found is not None
        return found


def jobs(db: Database) -> list[Any]:
    """The job queue, oldest first."""
    with db.transaction() as s:
        return list(s.execute(text(
            "SELECT task, status, attempts, last_error, args FROM hopsplane.jobs ORDER BY id")))


def notice_jobs(db: Database, status: str | None = None) -> list[Any]:
    """The queued notices (``notices.send`` jobs), oldest first: (id, status, args)."""
    with db.transaction() as s:
        return list(s.execute(text(
            "SELECT id, status, args FROM hopsplane.jobs WHERE task = 'notices.send' "
            "AND (CAST(:status AS text) IS NULL OR status = :status) ORDER BY id"),
            {"status": status}))


def send_notices(db: Database, mailer: Any, *, public_url: str = "",
                 hooks: Any = None) -> int:
    """Do what the worker does with the queued notices (send each with no transaction
    open, then mark its job done) and, with ``hooks``, with the queued standing
    announcements; leave every other job alone. Returns how many notices were sent."""
    from hopsplane.credits import tasks as credits_tasks
    from hopsplane.notices import service as notices
    from hopsplane.notices.schemas import AccountEvent

    sent = 0
    if hooks is not None:
        with db.transaction() as s:
            announce = list(s.execute(text(
                "SELECT id, args FROM hopsplane.jobs WHERE task = :t AND status = 'queued' "
                "ORDER BY id"), {"t": credits_tasks.ANNOUNCE_TASK}))
        for job_id, args in announce:
            with db.transaction() as s:
                credits_tasks.announce_standing(s, args, job_context(db, hooks=hooks))
                s.execute(text("UPDATE hopsplane.jobs SET status = 'done', finished_at = now() "
                               "WHERE id = :id"), {"id": job_id})
    for job_id, _status, args in notice_jobs(db, "queued"):
        sent += notices.send(db, mailer, AccountEvent.from_args(args), public_url=public_url)
        with db.transaction() as s:
            s.execute(text("UPDATE hopsplane.jobs SET status = 'done', finished_at = now() "
                           "WHERE id = :id"), {"id": job_id})
    return sent


def signup(db: Database, **kwargs: Any) -> str:
    """An owner signing up: the user and the clusters domain's work for a new account."""
    with db.transaction() as s:
        owner = make_user(s, **kwargs)
        ClusterHooks().account_created(s, owner)
    return owner


def assign(session: Session, owner: str, cluster: uuid.UUID) -> None:
    session.execute(
        text("INSERT INTO account_clusters (account_owner_id, hopsworks_cluster_id) "
             "VALUES (:o, :c)"),
        {"o": owner, "c": cluster},
    )


# --- the ledger ---


def post(
    session: Session,
    account: str,
    entry_type: EntryType | str,
    amount: str | Decimal,
    key: str | None = None,
    **kwargs: object,
) -> PostResult:
    return credits.post(
        session,
        Posting(
            account_owner_id=account,
            entry_type=EntryType(entry_type),
            amount=Decimal(amount),
            idempotency_key=key or uuid.uuid4().hex,
            **kwargs,  # type: ignore[arg-type]
        ),
    )


# --- usage ---


def upsert_usage(
    session: Session,
    account: str,
    day: date,
    units: str | Decimal,
    breakdown: dict[str, str] | None = None,
) -> None:
    """Set the day's units (late usage raises them), like the metering upsert does
    (INSERT ... ON CONFLICT (account_owner_id, date) DO UPDATE)."""
    units = Decimal(units)
    breakdown = breakdown or {account: str(units)}
    session.execute(
        text(
            """
            INSERT INTO usage_tracking (account_owner_id, date, compute_units, user_breakdown)
            VALUES (:a, :d, :u, CAST(:b AS jsonb))
            ON CONFLICT (account_owner_id, date) DO UPDATE
            SET compute_units = excluded.compute_units,
                user_breakdown = excluded.user_breakdown, updated_at = now()
            """
        ),
        {"a": account, "d": day, "u": units, "b": json.dumps(breakdown)},
    )


def usage_row(session: Session, account: str, day: date) -> tuple[Decimal, Decimal, Decimal]:
    """(unit_price, total_cost, billed_amount) of a day."""
    row = session.execute(
        text(
            "SELECT unit_price, total_cost, billed_amount FROM usage_tracking "
            "WHERE account_owner_id = :a AND date = :d"
        ),
        {"a": account, "d": day},
    ).one()
    return row[0], row[1], row[2]


def event(event_id: str | None = None, **fields: Any) -> UsageEventIn:
    fields.setdefault("timestamp", datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    if "cpu_seconds" not in fields:
        fields.setdefault("compute_units", "1")
    return UsageEventIn(id=event_id or uuid.uuid4().hex, **fields)


def day_row(session: Session, account: str, day: str = "2026-11-20") -> UsageTracking | None:
    session.expire_all()
    return session.query(UsageTracking).filter_by(
        account_owner_id=account, date=datetime.fromisoformat(day).date()
    ).one_or_none()


def units(session: Session, account: str, day: str = "2026-11-20") -> Decimal:
    row = day_row(session, account, day)
    return Decimal(0) if row is None else row.compute_units


# --- browser sessions ---


def session_cookie_for(
    db: Database, secret_keys: list[str], user_id: str, email: str, max_age: int = 3600
) -> str:
    """The signed session cookie of a live server-side session of ``user_id`` (a row, as
    the browser sign-in makes one)."""
    with db.transaction() as s:
        token = web_sessions.start(
            s, user_id, SessionIdentity(user_id, email, True, None), max_age
        )
    return session_cookie(CookieSigner(secret_keys, "session", max_age), token)


# --- account hooks ---


@dataclass
class RecordingHooks:
    """AccountHooks that write down what happened (the outcome other domains act on)."""

    events: list[tuple[str, ...]] = field(default_factory=list)
    listeners: Listeners = field(default_factory=Listeners)

    def account_created(self, session: Session, account_id: str) -> None:
        self.events.append(("account_created", account_id))

    def member_joined(self, session: Session, member_id: str, account_id: str) -> None:
        self.events.append(("member_joined", member_id, account_id))

    def member_removed(self, session: Session, member_id: str, account_id: str) -> None:
        self.events.append(("member_removed", member_id, account_id))

    def project_assigned(self, session: Session, member_id: str, project_id: int) -> None:
        self.events.append(("project_assigned", member_id, str(project_id)))

    def account_closing(self, session: Session, account_id: str) -> None:
        self.events.append(("account_closing", account_id))

    def account_suspended(self, session: Session, account_id: str) -> None:
        self.events.append(("account_suspended", account_id))

    def account_resumed(self, session: Session, account_id: str) -> None:
        self.events.append(("account_resumed", account_id))

    def member_budget_exceeded(self, session: Session, member_id: str, account_id: str) -> None:
        self.events.append(("member_budget_exceeded", member_id, account_id))

    def member_budget_restored(self, session: Session, member_id: str, account_id: str) -> None:
        self.events.append(("member_budget_restored", member_id, account_id))


# --- legacy databases ---

LEGACY_USERS = 400


def make_legacy(pg: PgServer, users: int = LEGACY_USERS) -> str:
    url = pg.empty_database()
    with legacy.connect(url) as conn, conn.begin():
        generate(conn, users)
    return url


def job_context(db: Database, public_url: str = "", **services: Any) -> Any:
    """A worker's context for running jobs in a test: the real services of a worker built
    from default settings (with ``public_url``), with the fakes given by name in their
    place (``mailer=``, ``hooks=``, ``webhook_sender=``...)."""
    from dataclasses import replace

    from hopsplane.composition import jobs
    from hopsplane.config import Settings
    from hopsplane.worker.schemas import JobContext

    settings = Settings(_env_file=None, public_url=public_url)  # type: ignore[call-arg]
    return JobContext(job_services=replace(jobs.services(settings, db), **services))
