"""Hopsworks clusters, assignments, what a suspension stopped, and signing keys."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from hopsplane.db.models.base import _EMPTY_JSON, MACHINERY_SCHEMA, Base


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


Index(
    "account_clusters_one_cluster_per_account",
    AccountCluster.account_owner_id,
    unique=True,
)


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
