"""SQLAlchemy models of hopsplane's tables, one module per domain that owns them. They
mirror the Alembic revisions exactly (`hopsplane db check` fails otherwise); the database
holds the invariants (CHECKs, triggers, foreign keys), these classes give typed access.
Importing this package registers every model on :data:`Base.metadata`."""

from hopsplane.db.models.accounts import User
from hopsplane.db.models.apikeys import ApiKey
from hopsplane.db.models.audit import AuditEntry
from hopsplane.db.models.base import (
    BALANCE,
    CORE_TABLES,
    MACHINERY_SCHEMA,
    MONEY,
    ORGANIZATION_TABLES,
    PRICE,
    PUBLIC_TABLES,
    UNITS,
    Base,
)
from hopsplane.db.models.billing import (
    AccountStanding,
    MemberBudget,
    PriceOverride,
)
from hopsplane.db.models.clusters import (
    AccountCluster,
    HopsworksCluster,
    HopsworksSigningKey,
    StoppedWorkload,
)
from hopsplane.db.models.credits import CreditCheckpoint, CreditDraw, CreditLot, LedgerEntry
from hopsplane.db.models.organizations import Organization, OrganizationMember
from hopsplane.db.models.payments import (
    AUTO_TOPUP_ACTIVE,
    TOPUP_MONEY,
    AutoTopup,
    AutoTopupAttempt,
    AutoTopupConsent,
    PurchaseReceipt,
    StripeEvent,
)
from hopsplane.db.models.ratelimits import RateLimitCounter
from hopsplane.db.models.sessions import WebSession
from hopsplane.db.models.teams import TeamInvite
from hopsplane.db.models.usage import UsageEvent, UsageIngestToken, UsageTracking
from hopsplane.db.models.webhooks import WebhookDelivery, WebhookEndpoint
from hopsplane.db.models.worker import Job

__all__ = [
    "AUTO_TOPUP_ACTIVE", "BALANCE", "CORE_TABLES", "MACHINERY_SCHEMA", "MONEY",
    "ORGANIZATION_TABLES", "PRICE", "PUBLIC_TABLES", "TOPUP_MONEY", "UNITS",
    "AccountCluster", "AccountStanding", "ApiKey", "AuditEntry", "AutoTopup", "AutoTopupAttempt",
    "AutoTopupConsent", "Base", "CreditCheckpoint", "CreditDraw", "CreditLot",
    "HopsworksCluster", "HopsworksSigningKey", "Job", "LedgerEntry", "MemberBudget",
    "Organization", "OrganizationMember", "PriceOverride", "PurchaseReceipt",
    "RateLimitCounter", "StoppedWorkload", "StripeEvent", "TeamInvite", "UsageEvent",
    "UsageIngestToken", "UsageTracking", "User", "WebSession", "WebhookDelivery",
    "WebhookEndpoint",
]
