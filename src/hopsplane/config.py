"""Settings, read from the environment (prefix ``HOPSPLANE_``) and an optional ``.env`` file.

Nothing here is read at import time: call :func:`get_settings` from an edge (CLI, API
factory, worker) and pass the result down.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Development-only placeholders. They make a bare `hopsplane serve` work on a laptop and
# are refused in production (see Settings.refuse_placeholders_in_production).
DEV_SECRET_KEY = "dev-insecure-secret-key-change-me"  # noqa: S105
# A valid Fernet key that is public knowledge: fine for development, refused in production.
DEV_ENCRYPTION_KEY = "ZGV2LWluc2VjdXJlLWZlcm5ldC1rZXktMzItYnl0ZXM="

Environment = Literal["development", "test", "production"]


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("hopsplane", appauthor=False))


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
        None, description="Signs session cookies. Required outside development."
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

    smtp_host: str | None = Field(
        None, description="SMTP server for outgoing email. Unset: emails are logged, not sent."
    )
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP port.")
    smtp_username: str | None = Field(None, description="SMTP login (optional).")
    smtp_password: SecretStr | None = Field(None, description="SMTP password (optional).")
    smtp_starttls: bool = Field(True, description="Upgrade the SMTP connection with STARTTLS.")
    smtp_from: str = Field(
        "hopsplane <no-reply@localhost>", description="From address of outgoing email."
    )
    public_url: str = Field(
        "http://127.0.0.1:8000",
        description="Base URL where users reach the console (links in emails, redirects).",
    )

    @field_validator("database_url")
    @classmethod
    def _normalise_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return normalise_database_url(value.strip())

    @model_validator(mode="after")
    def refuse_placeholders_in_production(self) -> Settings:
        if self.environment == "development":
            return self
        problems = []
        secret = self.secret_key.get_secret_value() if self.secret_key else ""
        if not secret:
            problems.append("HOPSPLANE_SECRET_KEY is not set")
        elif secret == DEV_SECRET_KEY or len(secret) < 32:
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
    def effective_secret_key(self) -> str:
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        return DEV_SECRET_KEY

    @property
    def effective_encryption_keys(self) -> list[str]:
        if self.encryption_keys is not None:
            keys = [k.strip() for k in self.encryption_keys.get_secret_value().split(",")]
            return [k for k in keys if k]
        return [DEV_ENCRYPTION_KEY]

    @property
    def effective_log_format(self) -> str:
        if self.log_format:
            return self.log_format
        return "json" if self.environment == "production" else "console"


def normalise_database_url(url: str) -> str:
    """Accept plain libpq URLs (postgres://, postgresql://) and pin the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    if url.startswith("postgresql+psycopg://"):
        return url
    raise ValueError(
        "HOPSPLANE_DATABASE_URL must be a PostgreSQL URL (postgresql://user@host:5432/db)"
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
