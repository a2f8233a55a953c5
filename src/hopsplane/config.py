"""Settings, read from the environment (prefix ``HOPSPLANE_``) and an optional ``.env`` file.

Nothing here is read at import time: call :func:`get_settings` from an edge (CLI, API
factory, worker) and pass the result down.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hopsplane.errors import AppError
from hopsplane.money import parse_amount

# Development-only placeholders. They make a bare `hopsplane serve` work on a laptop and
# are refused in production (see Settings.refuse_placeholders_in_production).
DEV_SECRET_KEY = "dev-insecure-secret-key-change-me"  # noqa: S105
# A valid Fernet key that is public knowledge: fine for development, refused in production.
DEV_ENCRYPTION_KEY = "ZGV2LWluc2VjdXJlLWZlcm5ldC1rZXktMzItYnl0ZXM="

Environment = Literal["development", "test", "production"]


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("hopsplane", appauthor=False))


def parse_thresholds(value: str) -> tuple[Decimal, ...]:
    """"10,1,0" -> (10.00, 1.00, 0.00), highest first; whole cents, no duplicates."""
    parts = [p.strip() for p in value.split(",") if p.strip()]
    amounts = sorted({parse_amount(p, field="threshold") for p in parts}, reverse=True)
    return tuple(amounts)


class Settings(BaseSettings):
    """Every setting of hopsplane. The README's configuration table mirrors this class."""

    model_config = SettingsConfigDict(
        env_prefix="HOPSPLANE_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    environment: Environment = Field(
        "development",
        description="development | test | production. Production refuses placeholder secrets.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy/libpq URL of the PostgreSQL server. Unset: an embedded "
        "PostgreSQL is started in data_dir.",
    )
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where the embedded PostgreSQL keeps its data between runs.",
    )
    embedded_database_name: str = Field(
        "hopsplane", description="Database created inside the embedded server."
    )
    secret_key: SecretStr | None = Field(
        None,
        description="Signs session cookies and form tokens. Required outside development. "
        "Comma-separated to rotate: the first signs, all are accepted, so adding a new key "
        "in front signs nobody out.",
    )
    encryption_keys: SecretStr | None = Field(
        None,
        description="Comma-separated Fernet keys for secrets at rest; the first encrypts, all "
        "decrypt (rotation). Required outside development.",
    )
    host: str = Field("127.0.0.1", description="Address `hopsplane serve` binds to.")
    port: int = Field(8000, ge=1, le=65535, description="Port `hopsplane serve` binds to.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Minimum level of log records."
    )
    log_format: Literal["json", "console"] | None = Field(
        None, description="json (one object a line) or console. Default: json in production."
    )
    db_pool_size: int = Field(10, ge=1, le=200, description="Connections kept per pool.")
    db_max_overflow: int = Field(20, ge=0, le=500, description="Extra connections under load.")
    db_statement_timeout_ms: int = Field(
        30_000, ge=0, description="statement_timeout for application sessions (0 = none)."
    )
    db_idle_in_transaction_timeout_ms: int = Field(
        60_000, ge=0,
        description="idle_in_transaction_session_timeout for application sessions: the "
        "server ends a session that holds a transaction open and idle this long (0 = none).",
    )
    db_pool_timeout_seconds: float = Field(
        2.0, gt=0, le=60,
        description="How long a request waits for a pooled connection before it answers 503.",
    )
    db_prepared_statements: bool = Field(
        True,
        description="Let psycopg prepare statements it runs often. Turn off behind PgBouncer "
        "in transaction mode (before 1.21), where a prepared statement does not follow the "
        "client from one server connection to the next.",
    )
    db_connect_timeout_seconds: int = Field(
        5, ge=1, le=120, description="Timeout of opening one database connection."
    )
    web_workers: int | None = Field(
        None, ge=1, le=64,
        description="Server processes of `hopsplane serve` (default: the number of cores).",
    )
    web_max_inflight: int | None = Field(
        None, ge=1, le=1000,
        description="Requests one server process works on at once; beyond that it answers "
        "503 with Retry-After at once. Default: DB_POOL_SIZE + DB_MAX_OVERFLOW, the "
        "connections the process may open (a request that cannot get one within "
        "DB_POOL_TIMEOUT_SECONDS answers 503).",
    )
    web_header_timeout_seconds: float = Field(
        10.0, gt=0, le=300,
        description="A connection must send a request's whole header block within this "
        "many seconds of opening (or of its previous answer); otherwise it is closed.",
    )
    web_body_timeout_seconds: float = Field(
        10.0, gt=0, le=600,
        description="A request's whole body must arrive within this many seconds of its "
        "header; otherwise it is answered 408 and the connection closed. A request counts "
        "against WEB_MAX_INFLIGHT only once its body has arrived.",
    )
    web_max_body_bytes: int = Field(
        8 * 1024 * 1024, ge=64 * 1024, le=256 * 1024 * 1024,
        description="Largest request body accepted (413 beyond); bodies are read whole "
        "before a request is admitted.",
    )

    smtp_host: str | None = Field(
        None, description="SMTP server for outgoing email. Unset: development keeps emails "
        "in memory (never logging their bodies) and shows invite links to the inviting owner; "
        "other environments refuse invites (503) and keep notices pending."
    )
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP port.")
    smtp_username: str | None = Field(None, description="SMTP login (optional).")
    smtp_password: SecretStr | None = Field(None, description="SMTP password (optional).")
    smtp_starttls: bool = Field(True, description="Upgrade the SMTP connection with STARTTLS.")
    smtp_from: str = Field(
        "hopsplane <no-reply@localhost>", description="From address of outgoing email."
    )
    support_email: str | None = Field(
        None, max_length=320,
        description="Whom customers write to for credits when Stripe is not configured.",
    )
    public_url: str = Field(
        "http://127.0.0.1:8000",
        description="Base URL where users reach the console (links in emails, redirects).",
    )

    # --- clusters, Hopsworks provisioning, worker ------------------------------------------
    hopsworks_timeout_seconds: float = Field(
        10.0, gt=0, le=300, description="Timeout of one Hopsworks REST call."
    )
    hopsworks_retries: int = Field(
        3, ge=0, le=10, description="Retries of a Hopsworks call on 5xx/connection errors."
    )
    hopsworks_retry_backoff_seconds: float = Field(
        0.5, ge=0, le=60, description="First wait between Hopsworks retries (doubles)."
    )
    hopsworks_create_project_timeout_seconds: float = Field(
        120.0, gt=0, le=1800,
        description="Timeout of the one call that creates a Hopsworks project (createas): "
        "Hopsworks builds the whole project (certificates, HopsFS, quotas, services, Python "
        "environment) before it answers. It is never re-sent; after a timeout provisioning "
        "finds the project by name and waits for it.",
    )
    hopsworks_verify_tls: bool = Field(
        True, description="Verify Hopsworks TLS certificates (against the cluster's CA bundle "
        "when it has one, else the system's). Switch off only on a test bench.")
    suspension_sweep_minutes: int = Field(
        10, ge=1, le=1440,
        description="While an account is suspended (or a member is over an enforced budget), "
        "how often what runs on Hopsworks is stopped again: a deactivated user's open "
        "Hopsworks session keeps working, so what they restart is stopped at the next sweep.",
    )
    worker_poll_interval_seconds: float = Field(
        2.0, gt=0, le=300,
        description="How long an idle worker waits before polling again (a new job wakes it "
        "at once through LISTEN/NOTIFY; polling is the fallback).",
    )
    worker_lease_seconds: float = Field(
        60.0, ge=1, le=3600,
        description="Lease of a running job; renewed every third of it while the job runs. A "
        "worker that dies loses its jobs' leases, and the jobs run again elsewhere.",
    )

    # billing and balance enforcement
    balance_thresholds: str = Field(
        "10,1,0",
        description="Low-balance notice thresholds in dollars, comma-separated. Crossing "
        "one downward sends one notice; at or below zero the account is suspended.",
    )
    billing_batch_size: int = Field(
        1000, ge=1, le=5000, description="Accounts charged per transaction by a billing run."
    )
    # Near-real-time metering: how often the worker asks each cluster's Prometheus for
    # today so far. It is most of the time between credit running out and compute stopping
    # (docs/operations.md, "Enforcement latency").
    usage_collect_interval_seconds: int = Field(
        300, ge=30, le=3600,
        description="How often the worker collects today's usage so far from every "
        "cluster's Prometheus (and bills the accounts whose usage changed at once).",
    )
    usage_finalise_grace_seconds: int = Field(
        60, ge=0, le=3600,
        description="How long after 00:00 UTC the worker collects the day that ended, once, "
        "at its end (room for the last scrapes to reach Prometheus).",
    )
    billing_slice_days: int = Field(
        366, ge=1, le=1000,
        description="Days of one account's usage charged per transaction by a billing run; "
        "a longer backlog is charged in further slices of the same run.",
    )
    usage_max_age_days: int = Field(
        400, ge=1, le=3650,
        description="Usage dated more than this many days before today (UTC) is refused, "
        "at ingestion (422) and by the collector.",
    )

    @field_validator("balance_thresholds")
    @classmethod
    def _valid_thresholds(cls, value: str) -> str:
        try:
            if not parse_thresholds(value):
                raise ValueError("at least one threshold is needed, e.g. 10,1,0")
        except AppError as exc:
            raise ValueError(exc.message) from exc
        return value

    @property
    def thresholds(self) -> tuple[Decimal, ...]:
        return parse_thresholds(self.balance_thresholds)

    # Stripe: buying credits. Unset secret key: top-ups and webhooks answer 503.
    stripe_secret_key: SecretStr | None = Field(
        None,
        description="Stripe secret (or restricted) key. sk_test_/rk_test_ = test mode "
        "(stripe_test_customer_id), sk_live_/rk_live_ = live mode (stripe_customer_id).",
    )
    stripe_webhook_secret: SecretStr | None = Field(
        None, description="Signing secret (whsec_...) of the webhook endpoint."
    )
    stripe_api_base: str = Field(
        "https://api.stripe.com", description="Base URL of the Stripe API (tests: a local server)."
    )
    stripe_currency: str = Field(
        "usd", pattern=r"^[a-z]{3}$", description="Currency of top-ups; one credit = one unit."
    )
    stripe_min_topup: Decimal = Field(
        Decimal("10.00"), gt=0, description="Smallest top-up, in currency units."
    )
    stripe_max_topup: Decimal = Field(
        Decimal("10000.00"), gt=0, description="Largest top-up, in currency units."
    )

    # --- auto top-up limits (checked under the account's auto top-up row lock) -------------
    auto_topup_max_per_day: int = Field(
        3, ge=1, le=100, description="At most this many auto top-up charges per account "
        "per UTC day (every PaymentIntent counts, declined ones too)."
    )
    auto_topup_max_amount_per_day: Decimal = Field(
        Decimal("1000.00"), gt=0, description="At most this much money charged by auto "
        "top-up per account per UTC day (declined and 3-D Secure-blocked charges are "
        "released)."
    )
    auto_topup_max_failures: int = Field(
        3, ge=1, le=20, description="After this many consecutive failed charges auto top-up "
        "pauses itself and the owner is told."
    )
    auto_topup_backoff_seconds: int = Field(
        3600, ge=1, description="Wait before retrying a declined auto top-up; doubles with "
        "each consecutive failure."
    )

    # --- identity (Auth0), browser sessions, team invites, rate limits ------------
    auth0_domain: str | None = Field(
        None, description="Auth0 tenant domain (e.g. example.eu.auth0.com). Unset: no Auth0."
    )
    auth0_audience: str | None = Field(
        None, description="API identifier that access tokens must carry in `aud`."
    )
    auth0_client_id: str | None = Field(
        None, description="Client id of the console's Auth0 application (browser sign-in)."
    )
    auth0_client_secret: SecretStr | None = Field(
        None, description="Client secret of the console's Auth0 application."
    )
    auth0_claims_namespace: str = Field(
        "https://hopsplane.io/",
        description="Prefix of the custom claims (email, email_verified, name) that an Auth0 "
        "Action adds to access tokens.",
    )
    auth0_jwks_min_refresh_seconds: int = Field(
        60, ge=0, le=3600,
        description="An unknown key id refetches the JWKS at most this often.",
    )
    auth0_jwks_cache_seconds: int = Field(
        3600, ge=60, le=86400, description="How long a fetched JWKS is trusted."
    )
    auth0_leeway_seconds: int = Field(
        30, ge=0, le=300, description="Clock skew tolerated on exp/nbf/iat."
    )
    auth_dev_issuer: bool = Field(
        False,
        description="Development only: a local token issuer (own RSA key, own JWKS over HTTP, "
        "sign-in without a password). Refused in production and together with Auth0.",
    )
    session_max_age_seconds: int = Field(
        43_200, ge=300, le=2_592_000, description="Lifetime of a browser session cookie."
    )
    invite_expiry_days: int = Field(
        7, ge=1, le=30, description="Default lifetime of a team invite (at most 30 days)."
    )
    rate_limit_invites_per_hour: int = Field(
        30, ge=1, description="Invites (new or resent) an account may send per hour."
    )
    rate_limit_accepts_per_hour: int = Field(
        10, ge=1, description="Invite acceptance attempts a user may make per hour."
    )

    @field_validator("database_url")
    @classmethod
    def _normalise_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return normalise_database_url(value.strip())

    @field_validator("stripe_secret_key")
    @classmethod
    def _stripe_key_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        prefixes = ("sk_test_", "sk_live_", "rk_test_", "rk_live_")
        if not value.get_secret_value().startswith(prefixes):
            raise ValueError("HOPSPLANE_STRIPE_SECRET_KEY must start with sk_test_, sk_live_, "
                             "rk_test_ or rk_live_")
        return value

    @model_validator(mode="after")
    def _topup_range(self) -> Settings:
        if self.stripe_min_topup > self.stripe_max_topup:
            raise ValueError("HOPSPLANE_STRIPE_MIN_TOPUP is above HOPSPLANE_STRIPE_MAX_TOPUP")
        for name in ("stripe_min_topup", "stripe_max_topup"):
            value = getattr(self, name)
            if value != value.quantize(Decimal("0.01")):
                raise ValueError(f"HOPSPLANE_{name.upper()} must be in whole cents")
        return self

    @field_validator("auth0_domain")
    @classmethod
    def _bare_domain(cls, value: str | None) -> str | None:
        """Accept `tenant.auth0.com`, `https://tenant.auth0.com/`: keep the bare host."""
        if value is None or not value.strip():
            return None
        host = value.strip().removeprefix("https://").removeprefix("http://").rstrip("/")
        if not host or "/" in host or " " in host:
            raise ValueError("HOPSPLANE_AUTH0_DOMAIN must be a host name like tenant.auth0.com")
        return host

    @model_validator(mode="after")
    def refuse_dev_issuer_with_real_identity(self) -> Settings:
        if self.auth_dev_issuer and self.environment == "production":
            raise ValueError("HOPSPLANE_AUTH_DEV_ISSUER is for development: refused in production")
        if self.auth_dev_issuer and (self.auth0_domain or self.auth0_audience):
            raise ValueError(
                "HOPSPLANE_AUTH_DEV_ISSUER cannot run together with an Auth0 configuration "
                "(HOPSPLANE_AUTH0_DOMAIN / HOPSPLANE_AUTH0_AUDIENCE): unset one of them"
            )
        if bool(self.auth0_domain) != bool(self.auth0_audience):
            raise ValueError(
                "HOPSPLANE_AUTH0_DOMAIN and HOPSPLANE_AUTH0_AUDIENCE go together: set both"
            )
        return self

    @model_validator(mode="after")
    def refuse_placeholders_in_production(self) -> Settings:
        if self.environment == "development":
            return self
        problems = []
        secrets = self.effective_secret_keys if self.secret_key else []
        if not secrets:
            problems.append("HOPSPLANE_SECRET_KEY is not set")
        elif any(s == DEV_SECRET_KEY or len(s) < 32 for s in secrets):
            problems.append("HOPSPLANE_SECRET_KEY is a placeholder or shorter than 32 characters")
        keys = self.encryption_keys.get_secret_value() if self.encryption_keys else ""
        if not keys:
            problems.append("HOPSPLANE_ENCRYPTION_KEYS is not set")
        elif DEV_ENCRYPTION_KEY in keys.split(","):
            problems.append("HOPSPLANE_ENCRYPTION_KEYS contains the development placeholder key")
        if problems and self.environment == "production":
            raise ValueError(
                "refusing to start in production: " + "; ".join(problems)
                + ". Generate a key with `hopsplane secrets generate-key`."
            )
        return self

    @property
    def effective_secret_keys(self) -> list[str]:
        """The signing keys, newest first: the first signs, all verify."""
        if self.secret_key is not None:
            keys = [k.strip() for k in self.secret_key.get_secret_value().split(",")]
            if any(keys):
                return [k for k in keys if k]
        return [DEV_SECRET_KEY]

    @property
    def effective_secret_key(self) -> str:
        """The key that signs now (the first of the list)."""
        return self.effective_secret_keys[0]

    @property
    def secure_cookies(self) -> bool:
        """Cookies carry ``Secure`` everywhere but in development over plain http."""
        return self.environment != "development" or self.public_url.startswith("https://")

    @property
    def effective_encryption_keys(self) -> list[str]:
        if self.encryption_keys is not None:
            keys = [k.strip() for k in self.encryption_keys.get_secret_value().split(",")]
            return [k for k in keys if k]
        return [DEV_ENCRYPTION_KEY]

    @property
    def max_inflight(self) -> int:
        """Requests one server process works on at once (see web_max_inflight)."""
        return self.web_max_inflight or self.db_pool_size + self.db_max_overflow

    @property
    def effective_log_format(self) -> str:
        if self.log_format:
            return self.log_format
        return "json" if self.environment == "production" else "console"


def normalise_database_url(url: str) -> str:
    """Accept plain libpq URLs (postgres://, postgresql://) and pin the psycopg 3 driver.

    A libpq multi-host URL (``postgresql://u@h1:5432,h2:5432,h3:5432/db``, what a Patroni
    cluster without a proxy in front is reached with) is rewritten into the form SQLAlchemy
    parses (``?host=h1:5432&host=h2:5432&...``); libpq then tries the hosts in order. With
    more than one host and no ``target_session_attrs``, ``read-write`` is added: every
    connection hopsplane opens writes, and a standby would refuse it (or, worse, answer
    reads with stale balances)."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://",
                   "postgresql+psycopg://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + _multi_host(url[len(prefix):])
    raise ValueError(
        "HOPSPLANE_DATABASE_URL must be a PostgreSQL URL (postgresql://user@host:5432/db)"
    )


def _multi_host(rest: str) -> str:
    """``[userinfo@]hosts[/db][?query]`` with the host list moved into the query when it
    names more than one host."""
    from urllib.parse import parse_qsl, urlencode

    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    netloc, tail = rest[:cut], rest[cut:]
    userinfo, at, hostlist = netloc.rpartition("@")
    path, _, query_text = tail.partition("?")
    query = parse_qsl(query_text, keep_blank_values=True)
    hosts = [h for h in hostlist.split(",") if h] if "," in hostlist else []
    if hosts:
        with_port = [h if h.rsplit("]", 1)[-1].count(":") == 1 else f"{h}:5432" for h in hosts]
        query = [("host", h) for h in with_port] + query
        netloc = userinfo + at
    if len([k for k, _ in query if k == "host"]) > 1 and all(
        k != "target_session_attrs" for k, _ in query
    ):
        query.append(("target_session_attrs", "read-write"))
    if not hosts and query_text == urlencode(query, safe=":/,[]"):
        return rest
    return netloc + (path or "/") + ("?" + urlencode(query, safe=":/,[]") if query else "")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
