"""SQLAlchemy models of the six core tables. They mirror the Alembic revisions exactly
(`hopsplane db check` fails otherwise); the database holds the invariants (CHECKs,
triggers, foreign keys), these classes give typed access."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    Date,
    DateTime,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

MACHINERY_SCHEMA = "hopsplane"
"""Schema for what the machinery needs beyond the six tables (alembic_version, functions)."""

MONEY = Numeric(14, 2)
BALANCE = Numeric(16, 2)
UNITS = Numeric(18, 4)
PRICE = Numeric(12, 6)

_EMPTY_JSON = text("'{}'::jsonb")


class Base(DeclarativeBase):
    type_annotation_map = {
        dict[str, Any]: JSONB,
        datetime: DateTime(timezone=True),
    }


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("email", name="users_email_key"),
        UniqueConstraint("id", "is_member", name="users_id_is_member_key"),
        UniqueConstraint("stripe_customer_id", name="users_stripe_customer_id_key"),
        UniqueConstraint("stripe_test_customer_id", name="users_stripe_test_customer_id_key"),
        ForeignKeyConstraint(
            ["account_owner_id", "owner_is_member"],
            ["users.id", "users.is_member"],
            name="users_owner_is_owner_fkey",
            ondelete="RESTRICT",
        ),
        Index(
            "users_account_owner_id_idx",
            "account_owner_id",
            postgresql_where=text("account_owner_id IS NOT NULL"),
        ),
        Index("users_email_lower_idx", func.lower(text("email"))),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    email: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_login_at: Mapped[datetime | None]
    account_owner_id: Mapped[str | None] = mapped_column(Text)
    stripe_customer_id: Mapped[str | None] = mapped_column(Text)
    stripe_test_customer_id: Mapped[str | None] = mapped_column(Text)
    hopsworks_username: Mapped[str | None] = mapped_column(Text)
    hopsworks_project_id: Mapped[int | None] = mapped_column(Integer)
    is_platform_admin: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", server_default=_EMPTY_JSON)
    is_member: Mapped[bool] = mapped_column(
        Boolean, Computed("account_owner_id IS NOT NULL", persisted=True)
    )
    owner_is_member: Mapped[bool | None] = mapped_column(
        Boolean,
        Computed("CASE WHEN account_owner_id IS NOT NULL THEN false END", persisted=True),
    )

    @property
    def is_owner(self) -> bool:
        return self.account_owner_id is None


class HopsworksCluster(Base):
    __tablename__ = "hopsworks_clusters"
    __table_args__ = (
        Index("hopsworks_clusters_name_key", func.lower(text("name")), unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )
    name: Mapped[str] = mapped_column(Text)
    api_url: Mapped[str] = mapped_column(Text)
    api_key: Mapped[str] = mapped_column(Text)  # Fernet ciphertext, never plaintext
    max_users: Mapped[int] = mapped_column(Integer, server_default=text("100"))
    current_users: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    status: Mapped[str] = mapped_column(Text, server_default=text("'active'"))
    kubeconfig: Mapped[str | None] = mapped_column(Text)  # Fernet ciphertext
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", server_default=_EMPTY_JSON)
    auth_api_key: Mapped[str | None] = mapped_column(Text)  # Fernet ciphertext (revision 0012)
    ca_bundle: Mapped[str | None] = mapped_column(Text)  # PEM, public (revision 0024)
    prometheus_ca_bundle: Mapped[str | None] = mapped_column(Text)  # PEM, public
    prometheus_auth: Mapped[str | None] = mapped_column(Text)  # Fernet ciphertext of JSON


class AccountCluster(Base):
    __tablename__ = "account_clusters"
    __table_args__ = (
        PrimaryKeyConstraint(
            "account_owner_id", "hopsworks_cluster_id", name="account_clusters_pkey"
        ),
        ForeignKeyConstraint(
            ["account_owner_id", "account_is_member"],
            ["users.id", "users.is_member"],
            name="account_clusters_owner_fkey",
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["hopsworks_cluster_id"],
            ["hopsworks_clusters.id"],
            name="account_clusters_cluster_fkey",
            ondelete="RESTRICT",
        ),
        Index("account_clusters_cluster_idx", "hopsworks_cluster_id"),
    )

    account_owner_id: Mapped[str] = mapped_column(Text)
    hopsworks_cluster_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    assigned_at: Mapped[datetime] = mapped_column(server_default=func.now())
    assigned_by: Mapped[str | None] = mapped_column(Text)
    account_is_member: Mapped[bool] = mapped_column(Boolean, Computed("false", persisted=True))


class UsageTracking(Base):
    __tablename__ = "usage_tracking"
    __table_args__ = (
        UniqueConstraint("account_owner_id", "date", name="usage_tracking_account_date_key"),
        ForeignKeyConstraint(
            ["account_owner_id", "account_is_member"],
            ["users.id", "users.is_member"],
            name="usage_tracking_owner_fkey",
            ondelete="RESTRICT",
        ),
        # issue 4: the rows with something left to charge
        Index(
            "usage_tracking_unbilled_idx",
            "account_owner_id",
            "date",
            postgresql_where=text("total_cost > billed_amount"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )
    account_owner_id: Mapped[str] = mapped_column(Text)
    date: Mapped[date] = mapped_column(Date)
    compute_units: Mapped[Decimal] = mapped_column(UNITS, server_default=text("0"))
    unit_price: Mapped[Decimal] = mapped_column(PRICE, server_default=text("0.0001"))
    total_cost: Mapped[Decimal] = mapped_column(
        Numeric(16, 2), Computed("round(compute_units * unit_price, 2)", persisted=True)
    )
    user_breakdown: Mapped[dict[str, Any]] = mapped_column(server_default=_EMPTY_JSON)
    raw_metrics: Mapped[dict[str, Any]] = mapped_column(server_default=_EMPTY_JSON)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    account_is_member: Mapped[bool] = mapped_column(Boolean, Computed("false", persisted=True))
    # issue 4: how much of total_cost is already charged (updated with the usage debit)
    billed_amount: Mapped[Decimal] = mapped_column(Numeric(16, 2), server_default=text("0"))


class LedgerEntry(Base):
    __tablename__ = "credits_ledger"
    __table_args__ = (
        UniqueConstraint("idempotency_key", name="credits_ledger_idempotency_key_key"),
        UniqueConstraint("account_owner_id", "seq", name="credits_ledger_account_seq_key"),
        UniqueConstraint(
            "account_owner_id", "seq", "balance", name="credits_ledger_account_seq_balance_key"
        ),
        ForeignKeyConstraint(
            ["account_owner_id", "account_is_member"],
            ["users.id", "users.is_member"],
            name="credits_ledger_owner_fkey",
            ondelete="RESTRICT",
        ),
        ForeignKeyConstraint(
            ["account_owner_id", "prev_seq", "prev_balance"],
            [
                "credits_ledger.account_owner_id",
                "credits_ledger.seq",
                "credits_ledger.balance",
            ],
            name="credits_ledger_prev_fkey",
        ),
        ForeignKeyConstraint(
            ["refund_of"], ["credits_ledger.id"], name="credits_ledger_refund_of_fkey"
        ),
        Index(
            "credits_ledger_purchase_payment_intent_key",
            "stripe_payment_intent_id",
            unique=True,
            postgresql_where=text(
                "type = 'purchase' AND stripe_payment_intent_id IS NOT NULL"
            ),
        ),
        Index(
            "credits_ledger_refund_of_idx",
            "refund_of",
            postgresql_where=text("refund_of IS NOT NULL"),
        ),
        # issue 15 (revision 0017): expiring grants, expiries, disputes
        ForeignKeyConstraint(
            ["refers_to"], ["credits_ledger.id"], name="credits_ledger_refers_to_fkey"
        ),
        Index(
            "credits_ledger_one_expiry_per_grant",
            "refers_to",
            unique=True,
            postgresql_where=text("type = 'expiry'"),
        ),
        Index(
            "credits_ledger_one_entry_per_dispute",
            "stripe_dispute_id",
            "type",
            unique=True,
            postgresql_where=text("stripe_dispute_id IS NOT NULL"),
        ),
        Index(
            "credits_ledger_expiring_grants",
            "expires_at",
            postgresql_where=text("expires_at IS NOT NULL"),
        ),
        # issue 25 (revision 0023): does an account hold credit that expires
        Index(
            "credits_ledger_expiring_by_account",
            "account_owner_id",
            "expires_at",
            postgresql_where=text("expires_at IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )
    account_owner_id: Mapped[str] = mapped_column(Text)
    seq: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[Decimal] = mapped_column(MONEY)
    balance: Mapped[Decimal] = mapped_column(BALANCE)
    type: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    idempotency_key: Mapped[str] = mapped_column(Text)
    refund_of: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    prev_seq: Mapped[int | None] = mapped_column(BigInteger)
    prev_balance: Mapped[Decimal | None] = mapped_column(BALANCE)
    account_is_member: Mapped[bool] = mapped_column(Boolean, Computed("false", persisted=True))
    expires_at: Mapped[datetime | None]  # an expiring grant (revision 0017)
    refers_to: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    stripe_dispute_id: Mapped[str | None] = mapped_column(Text)


class TeamInvite(Base):
    __tablename__ = "team_invites"
    __table_args__ = (
        UniqueConstraint("token_hash", name="team_invites_token_hash_key"),
        ForeignKeyConstraint(
            ["account_owner_id", "account_is_member"],
            ["users.id", "users.is_member"],
            name="team_invites_owner_fkey",
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["accepted_by"], ["users.id"], name="team_invites_accepted_by_fkey",
            ondelete="SET NULL",
        ),
        Index(
            "team_invites_one_live_per_email",
            "account_owner_id",
            func.lower(text("email")),
            unique=True,
            postgresql_where=text("accepted_at IS NULL AND revoked_at IS NULL"),
        ),
        Index(
            "team_invites_accepted_by_idx",
            "accepted_by",
            postgresql_where=text("accepted_by IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )
    account_owner_id: Mapped[str] = mapped_column(Text)
    email: Mapped[str] = mapped_column(Text)
    token_hash: Mapped[str] = mapped_column(Text)  # SHA-256 hex of the token
    expires_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]
    accepted_by: Mapped[str | None] = mapped_column(Text)
    revoked_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    account_is_member: Mapped[bool] = mapped_column(Boolean, Computed("false", persisted=True))


# --- issue 6: clusters and the job queue -------------------------------------------------

Index(
    "account_clusters_one_cluster_per_account",
    AccountCluster.account_owner_id,
    unique=True,
)


class Job(Base):
    """A unit of work of `hopsplane worker` (see hopsplane.worker)."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("idempotency_key", name="jobs_idempotency_key_key"),
        Index(
            "jobs_due_idx", "run_at", "id", postgresql_where=text("status = 'queued'")
        ),
        Index(
            "jobs_one_running_per_lock_key", "lock_key", unique=True,
            postgresql_where=text("status = 'running' AND lock_key IS NOT NULL"),
        ),
        Index("jobs_lease_idx", "lease_expires_at", postgresql_where=text("status = 'running'")),
        {"schema": MACHINERY_SCHEMA},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    task: Mapped[str] = mapped_column(Text)
    args: Mapped[dict[str, Any]] = mapped_column(server_default=_EMPTY_JSON)
    lock_key: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default=text("'queued'"))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    max_attempts: Mapped[int] = mapped_column(Integer, server_default=text("20"))
    run_at: Mapped[datetime] = mapped_column(server_default=func.now())
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    finished_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    # revision 0011: a running job's lease (see hopsplane.worker)
    lease_owner: Mapped[str | None] = mapped_column(Text)
    lease_expires_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]


CORE_TABLES = (
    "users",
    "hopsworks_clusters",
    "account_clusters",
    "usage_tracking",
    "credits_ledger",
    "team_invites",
)
ORGANIZATION_TABLES = ("organizations", "organization_members")
"""The plan's "Future: Organizations" (revision 0016), beside the six in ``public``."""
PUBLIC_TABLES = CORE_TABLES + ORGANIZATION_TABLES



# --- issue 4: billing and balance enforcement (revision 0002, schema "hopsplane") -------


class PriceOverride(Base):
    """A platform admin's unit price for one account, applying from ``effective_from``."""

    __tablename__ = "price_overrides"
    __table_args__ = (
        PrimaryKeyConstraint("account_owner_id", "effective_from", name="price_overrides_pkey"),
        ForeignKeyConstraint(
            ["account_owner_id", "account_is_member"],
            ["users.id", "users.is_member"],
            name="price_overrides_owner_fkey",
            ondelete="RESTRICT",
        ),
        {"schema": MACHINERY_SCHEMA},
    )

    account_owner_id: Mapped[str] = mapped_column(Text)
    effective_from: Mapped[date] = mapped_column(Date)
    unit_price: Mapped[Decimal] = mapped_column(PRICE)
    reason: Mapped[str] = mapped_column(Text)
    set_by: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    account_is_member: Mapped[bool] = mapped_column(Boolean, Computed("false", persisted=True))


class AccountStanding(Base):
    """Suspended or not, and the lowest low-balance threshold already announced."""

    __tablename__ = "account_standing"
    __table_args__ = ({"schema": MACHINERY_SCHEMA},)

    account_owner_id: Mapped[str] = mapped_column(Text, primary_key=True)
    suspended: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    notice_threshold: Mapped[Decimal | None] = mapped_column(BALANCE)
    ledger_seq: Mapped[int] = mapped_column(BigInteger)
    changed_at: Mapped[datetime] = mapped_column(server_default=func.now())


class BalanceEvent(Base):
    """Outbox of low-balance notices, suspensions and resumptions."""

    __tablename__ = "balance_events"
    __table_args__ = (
        UniqueConstraint(
            "account_owner_id", "ledger_seq", "kind", name="balance_events_once_per_entry"
        ),
        Index(
            "balance_events_pending_idx",
            "id",
            postgresql_where=text("dispatched_at IS NULL"),
        ),
        {"schema": MACHINERY_SCHEMA},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    account_owner_id: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    threshold: Mapped[Decimal | None] = mapped_column(BALANCE)
    balance: Mapped[Decimal] = mapped_column(BALANCE)
    ledger_seq: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    dispatched_at: Mapped[datetime | None]
    amount: Mapped[Decimal | None] = mapped_column(BALANCE)  # credits_expiring: what expires
    expires_at: Mapped[datetime | None]  # credits_expiring: when


# --- issue 15: which credits each debit drew from (revision 0017) -------------------------


class CreditLot(Base):
    """One row per drawn credit (its part left to draw) and per drawn debit that a credit
    did not cover in full (the part still owed). Written only by ``hopsplane.burn_down``
    and the draws' trigger (revision 0023)."""

    __tablename__ = "credit_lots"
    __table_args__ = (
        Index(
            "credit_lots_open_credits",
            "account_owner_id",
            text("(expires_at IS NULL)"),
            "expires_at",
            "seq",
            postgresql_where=text("is_credit AND NOT spent"),
        ),
        Index(
            "credit_lots_open_debits",
            "account_owner_id",
            "seq",
            postgresql_where=text("NOT is_credit AND NOT spent"),
        ),
        {"schema": MACHINERY_SCHEMA},
    )

    entry_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    account_owner_id: Mapped[str] = mapped_column(Text)
    seq: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(Text)
    is_credit: Mapped[bool] = mapped_column(Boolean)
    expires_at: Mapped[datetime | None]
    at: Mapped[datetime]
    amount: Mapped[Decimal] = mapped_column(MONEY)
    open: Mapped[Decimal] = mapped_column(MONEY)
    spent: Mapped[bool] = mapped_column(Boolean)  # open = 0; indexed instead of open (HOT)


class CreditDraw(Base):
    """A debit drew ``amount`` from a credit (append-only)."""

    __tablename__ = "credit_draws"
    __table_args__ = (
        PrimaryKeyConstraint("debit_entry_id", "credit_entry_id", name="credit_draws_pkey"),
        Index("credit_draws_credit_idx", "credit_entry_id"),
        {"schema": MACHINERY_SCHEMA},
    )

    debit_entry_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    credit_entry_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    drawn_at: Mapped[datetime]


class CreditCheckpoint(Base):
    """Every entry of the account up to ``seq`` has its lots and draws (revision 0023)."""

    __tablename__ = "credit_checkpoints"
    __table_args__ = ({"schema": MACHINERY_SCHEMA},)

    account_owner_id: Mapped[str] = mapped_column(Text, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)


# --- issue 7: Stripe webhook event log (hopsplane schema) ---------------------------------


class StripeEvent(Base):
    __tablename__ = "stripe_events"
    __table_args__ = (
        Index(
            "stripe_events_object_idx",
            "object_id",
            postgresql_where=text("object_id IS NOT NULL"),
        ),
        Index(
            "stripe_events_failed_idx",
            "received_at",
            postgresql_where=text("status = 'failed'"),
        ),
        {
            "schema": MACHINERY_SCHEMA,
            "comment": "Every Stripe webhook event once, by id; processed in the "
            "transaction that stored it.",
        },
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    type: Mapped[str] = mapped_column(Text)
    livemode: Mapped[bool] = mapped_column(Boolean)
    stripe_created_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
    processed_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(Text, server_default=text("'received'"))
    object_id: Mapped[str | None] = mapped_column(Text)
    account_owner_id: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]]
# --- issue 5: rate-limit counters (machinery, schema `hopsplane`) ---


class RateLimitCounter(Base):
    """One fixed window of one rate-limit bucket (e.g. ``invite:create:<account>``)."""

    __tablename__ = "rate_limits"
    __table_args__ = (
        PrimaryKeyConstraint("bucket", "window_start", name="rate_limits_pkey"),
        Index("rate_limits_window_start_idx", "window_start"),
        {"schema": MACHINERY_SCHEMA},
    )

    bucket: Mapped[str] = mapped_column(Text)
    window_start: Mapped[datetime]
    hits: Mapped[int] = mapped_column(Integer, server_default=text("1"))


# --- issue 6: usage metering (revision 0007) -------------------------------------------


class UsageEvent(Base):
    """One usage event as received (hopsplane.usage_events), identified by its source and
    its id (revision 0013). An id repeated by the same source is ignored; the same id from
    two sources is two events. A re-collected Prometheus day updates its event in place
    (``revision`` + 1)."""

    __tablename__ = "usage_events"
    __table_args__ = (
        PrimaryKeyConstraint("source", "event_id", name="usage_events_pkey"),
        Index(
            "usage_events_unmatched_idx",
            "source",
            "event_id",
            postgresql_where=text("status = 'unmatched'"),
        ),
        Index(
            "usage_events_collected_idx",
            "source",
            "day",
            postgresql_where=text("namespace IS NOT NULL"),
        ),
        {"schema": MACHINERY_SCHEMA},
    )

    event_id: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    cluster_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    account_id: Mapped[str | None] = mapped_column(Text)
    project_id: Mapped[int | None] = mapped_column(Integer)
    namespace: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime]
    day: Mapped[date] = mapped_column(
        Date, Computed("(timezone('UTC', occurred_at))::date", persisted=True)
    )
    compute_units: Mapped[Decimal] = mapped_column(UNITS)
    cpu_seconds: Mapped[Decimal | None] = mapped_column(Numeric)
    status: Mapped[str] = mapped_column(Text)
    problem: Mapped[str | None] = mapped_column(Text)
    account_owner_id: Mapped[str | None] = mapped_column(Text)
    attributed_user_id: Mapped[str | None] = mapped_column(Text)
    revision: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class UsageIngestToken(Base):
    """The SHA-256 of a cluster's usage ingestion token (never the token)."""

    __tablename__ = "usage_ingest_tokens"
    __table_args__ = (
        UniqueConstraint("token_sha256", name="usage_ingest_tokens_token_sha256_key"),
        ForeignKeyConstraint(
            ["cluster_id"],
            ["hopsworks_clusters.id"],
            name="usage_ingest_tokens_cluster_id_fkey",
            ondelete="CASCADE",
        ),
        {"schema": MACHINERY_SCHEMA},
    )

    cluster_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    token_sha256: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


# --- issue 12: what a suspension stopped (revision 0012) ---------------------------------


class StoppedWorkload(Base):
    """A job execution, Jupyter server or model deployment that a suspension stopped."""

    __tablename__ = "stopped_workloads"
    __table_args__ = (
        ForeignKeyConstraint(
            ["account_owner_id"], ["users.id"],
            name="stopped_workloads_account_owner_id_fkey", ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["cluster_id"], ["hopsworks_clusters.id"],
            name="stopped_workloads_cluster_id_fkey", ondelete="CASCADE",
        ),
        CheckConstraint(
            "kind IN ('job_execution', 'jupyter', 'deployment')", name="stopped_workloads_kind"
        ),
        UniqueConstraint(
            "account_owner_id", "suspension", "kind", "ref", name="stopped_workloads_once"
        ),
        Index(
            "stopped_workloads_account_idx",
            "account_owner_id", text("stopped_at DESC"), text("id DESC"),
        ),
        {"schema": MACHINERY_SCHEMA},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    account_owner_id: Mapped[str] = mapped_column(Text)
    cluster_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    project_id: Mapped[int] = mapped_column(Integer)
    suspension: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    ref: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    hopsworks_user: Mapped[str | None] = mapped_column(Text)
    stopped_at: Mapped[datetime] = mapped_column(server_default=func.now())


class HopsworksSigningKey(Base):
    """A signing key hopsplane made on a cluster (``POST /jwt``) and has not yet seen
    deleted (revision 0024)."""

    __tablename__ = "hopsworks_signing_keys"
    __table_args__ = (
        ForeignKeyConstraint(
            ["cluster_id"], ["hopsworks_clusters.id"],
            name="hopsworks_signing_keys_cluster_id_fkey", ondelete="CASCADE",
        ),
        CheckConstraint("key_name LIKE 'hopsplane-%'",
                        name="hopsworks_signing_keys_key_name_check"),
        Index("hopsworks_signing_keys_created_idx", "created_at"),
        {"schema": MACHINERY_SCHEMA},
    )

    key_name: Mapped[str] = mapped_column(Text, primary_key=True)
    cluster_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

# --- issue 16: browser sessions, server-side (revision 0014, schema `hopsplane`) --------


class WebSession(Base):
    """A signed-in browser: the SHA-256 of its cookie's token (never the token), who it is,
    until when, and whether it was revoked (sign-out, "sign out everywhere")."""

    __tablename__ = "sessions"
    __table_args__ = (
        UniqueConstraint("token_sha256", name="sessions_token_sha256_key"),
        ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="sessions_user_id_fkey", ondelete="CASCADE"
        ),
        Index("sessions_user_live_idx", "user_id", postgresql_where=text("revoked_at IS NULL")),
        {"schema": MACHINERY_SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    token_sha256: Mapped[str] = mapped_column(Text)
    user_id: Mapped[str] = mapped_column(Text)
    sub: Mapped[str] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    email_verified: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    name: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


# --- issue 13: organizations (revision 0016, schema `public`, as the plan sketches) -----


class Organization(Base):
    """A group of an account's people, for grouping and delegated roles; billing stays
    with the account owner (``owner_id``)."""

    __tablename__ = "organizations"
    __table_args__ = (
        ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name="organizations_owner_id_fkey", ondelete="CASCADE"
        ),
        CheckConstraint(
            "length(btrim(name)) BETWEEN 1 AND 100 AND name = btrim(name)",
            name="organizations_name_check",
        ),
        Index("organizations_owner_name_key", "owner_id", func.lower(text("name")), unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    name: Mapped[str] = mapped_column(Text)
    owner_id: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class OrganizationMember(Base):
    """A person of the owner's account in an organization, with a role: admin, billing or
    member."""

    __tablename__ = "organization_members"
    __table_args__ = (
        ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"],
            name="organization_members_organization_id_fkey", ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="organization_members_user_id_fkey",
            ondelete="CASCADE",
        ),
        CheckConstraint(
            "role IN ('admin', 'billing', 'member')", name="organization_members_role_check"
        ),
        Index("organization_members_user_idx", "user_id"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    user_id: Mapped[str] = mapped_column(Text, primary_key=True)
    role: Mapped[str] = mapped_column(Text)
    added_at: Mapped[datetime] = mapped_column(server_default=func.now())


# --- issue 15: auto top-up (revision 0018, schema "hopsplane") ---------------------------

TOPUP_MONEY = Numeric(12, 2)


class AutoTopupConsent(Base):
    """What an owner agreed to when turning auto top-up on: the exact terms shown, who,
    when; ``revoked_*`` once turned off or the card removed."""

    __tablename__ = "auto_topup_consents"
    __table_args__ = (
        ForeignKeyConstraint(
            ["account_owner_id"], ["users.id"], name="auto_topup_consents_account_fkey",
            ondelete="CASCADE",
        ),
        CheckConstraint("length(terms) > 0", name="auto_topup_consents_terms_check"),
        CheckConstraint(
            "(revoked_at IS NULL) = (revoked_by IS NULL) AND "
            "(revoked_at IS NULL OR revoked_at >= given_at)",
            name="auto_topup_consents_revoked_check",
        ),
        Index("auto_topup_consents_account_idx", "account_owner_id", "given_at"),
        {"schema": MACHINERY_SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    account_owner_id: Mapped[str] = mapped_column(Text)
    given_by: Mapped[str] = mapped_column(Text)
    given_at: Mapped[datetime] = mapped_column(server_default=func.now())
    terms: Mapped[str] = mapped_column(Text)
    threshold: Mapped[Decimal] = mapped_column(TOPUP_MONEY)
    amount: Mapped[Decimal] = mapped_column(TOPUP_MONEY)
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(Text)


class AutoTopup(Base):
    """An account's auto top-up: on/off/paused, threshold and amount, the saved card, the
    consent in force and the day's counters its limits are checked against."""

    __tablename__ = "auto_topup"
    __table_args__ = (
        ForeignKeyConstraint(
            ["account_owner_id"], ["users.id"], name="auto_topup_account_fkey",
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["consent_id"], ["hopsplane.auto_topup_consents.id"],
            name="auto_topup_consent_fkey",
        ),
        CheckConstraint(
            "status IN ('off', 'awaiting_card', 'on', 'paused')",
            name="auto_topup_status_check",
        ),
        CheckConstraint(
            "(status = 'paused') = (paused_reason IS NOT NULL)",
            name="auto_topup_paused_reason_check",
        ),
        CheckConstraint(
            "status NOT IN ('on', 'paused') OR "
            "(payment_method_id IS NOT NULL AND consent_id IS NOT NULL)",
            name="auto_topup_on_needs_card_and_consent_check",
        ),
        CheckConstraint(
            "threshold >= 0 AND amount > 0 AND day_amount >= 0 AND day_count >= 0 AND "
            "consecutive_failures >= 0",
            name="auto_topup_amounts_check",
        ),
        {"schema": MACHINERY_SCHEMA},
    )

    account_owner_id: Mapped[str] = mapped_column(Text, primary_key=True)
    status: Mapped[str] = mapped_column(Text, server_default=text("'off'"))
    paused_reason: Mapped[str | None] = mapped_column(Text)
    threshold: Mapped[Decimal] = mapped_column(TOPUP_MONEY)
    amount: Mapped[Decimal] = mapped_column(TOPUP_MONEY)
    currency: Mapped[str] = mapped_column(Text)
    payment_method_id: Mapped[str | None] = mapped_column(Text)
    card_label: Mapped[str | None] = mapped_column(Text)
    consent_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    consecutive_failures: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    day: Mapped[date] = mapped_column(
        Date, server_default=text("((now() AT TIME ZONE 'UTC'::text))::date")
    )
    day_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    day_amount: Mapped[Decimal] = mapped_column(TOPUP_MONEY, server_default=text("0"))
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


AUTO_TOPUP_ACTIVE = "status IN ('scheduled', 'charging', 'processing', 'requires_action')"


class AutoTopupAttempt(Base):
    """One threshold crossing's auto top-up: its tries, the last PaymentIntent, the
    outcome. Unique per (account, crossing); at most one active per account."""

    __tablename__ = "auto_topup_attempts"
    __table_args__ = (
        ForeignKeyConstraint(
            ["account_owner_id"], ["hopsplane.auto_topup.account_owner_id"],
            name="auto_topup_attempts_account_fkey", ondelete="CASCADE",
        ),
        UniqueConstraint(
            "account_owner_id", "crossing_key", name="auto_topup_attempts_crossing_key"
        ),
        CheckConstraint(
            "status IN ('scheduled', 'charging', 'processing', 'requires_action', "
            "'succeeded', 'failed', 'canceled')",
            name="auto_topup_attempts_status_check",
        ),
        CheckConstraint("amount > 0 AND tries >= 0", name="auto_topup_attempts_amount_check"),
        CheckConstraint(
            "status <> 'scheduled' OR next_try_at IS NOT NULL",
            name="auto_topup_attempts_scheduled_check",
        ),
        Index(
            "auto_topup_attempts_one_active", "account_owner_id", unique=True,
            postgresql_where=text(AUTO_TOPUP_ACTIVE),
        ),
        Index("auto_topup_attempts_account_idx", "account_owner_id", text("created_at DESC")),
        Index(
            "auto_topup_attempts_payment_intent_idx", "payment_intent_id",
            postgresql_where=text("payment_intent_id IS NOT NULL"),
        ),
        {"schema": MACHINERY_SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    account_owner_id: Mapped[str] = mapped_column(Text)
    crossing_key: Mapped[str] = mapped_column(Text)
    threshold: Mapped[Decimal] = mapped_column(TOPUP_MONEY)
    amount: Mapped[Decimal] = mapped_column(TOPUP_MONEY)
    balance_at_crossing: Mapped[Decimal] = mapped_column(TOPUP_MONEY)
    status: Mapped[str] = mapped_column(Text, server_default=text("'scheduled'"))
    tries: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_try_at: Mapped[datetime | None]
    payment_intent_id: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


# --- issue 15: receipts and member budgets (revision 0019, schema `hopsplane`) ----------


class PurchaseReceipt(Base):
    """The Stripe receipt of a purchase (payments): the paid invoice Checkout created, or
    the charge's receipt for purchases from before invoices were created."""

    __tablename__ = "purchase_receipts"
    __table_args__ = (
        Index("purchase_receipts_account_idx", "account_owner_id"),
        Index(
            "purchase_receipts_missing_idx",
            "payment_intent_id",
            postgresql_where=text("receipt_url IS NULL"),
        ),
        {"schema": MACHINERY_SCHEMA},
    )

    payment_intent_id: Mapped[str] = mapped_column(Text, primary_key=True)
    account_owner_id: Mapped[str] = mapped_column(Text)
    invoice_id: Mapped[str | None] = mapped_column(Text)
    receipt_url: Mapped[str | None] = mapped_column(Text)
    pdf_url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class MemberBudget(Base):
    """An owner's monthly budget for one member of their team (billing)."""

    __tablename__ = "member_budgets"
    __table_args__ = (
        ForeignKeyConstraint(
            ["member_id"], ["users.id"], name="member_budgets_member_id_fkey",
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["account_owner_id"], ["users.id"], name="member_budgets_account_owner_id_fkey",
            ondelete="CASCADE",
        ),
        Index("member_budgets_account_idx", "account_owner_id"),
        {"schema": MACHINERY_SCHEMA},
    )

    member_id: Mapped[str] = mapped_column(Text, primary_key=True)
    account_owner_id: Mapped[str] = mapped_column(Text)
    monthly_budget: Mapped[Decimal] = mapped_column(MONEY)
    enforce: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    stopped_month: Mapped[date | None] = mapped_column(Date)
    set_by: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class BudgetNotice(Base):
    """Outbox of the 80 % / 100 % budget notices, one row per recipient."""

    __tablename__ = "budget_notices"
    __table_args__ = (
        UniqueConstraint(
            "member_id", "month", "percent", "budget", "recipient", name="budget_notices_once"
        ),
        Index(
            "budget_notices_pending_idx",
            "id",
            postgresql_where=text("dispatched_at IS NULL"),
        ),
        {"schema": MACHINERY_SCHEMA},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    member_id: Mapped[str] = mapped_column(Text)
    account_owner_id: Mapped[str] = mapped_column(Text)
    month: Mapped[date] = mapped_column(Date)
    percent: Mapped[int] = mapped_column(SmallInteger)
    budget: Mapped[Decimal] = mapped_column(MONEY)
    spend: Mapped[Decimal] = mapped_column(BALANCE)
    recipient: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    dispatched_at: Mapped[datetime | None]
