"""Settings read once from the environment (and an optional .env file)."""

from __future__ import annotations

import logging
import secrets
from functools import lru_cache
from typing import Literal

import limits
from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

logger = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./accounts.db"


class Settings(BaseSettings):
    # hide_input_in_errors: a bad setting is reported without its value (URLs hold passwords).
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", hide_input_in_errors=True)

    app_env: Literal["development", "test", "production"] = "development"
    database_url: str = DEFAULT_DATABASE_URL
    secret_key: SecretStr | None = None
    token_max_age: int = 21600
    # Seconds before a database connection attempt gives up (SPEC: bounded faults).
    db_connect_timeout: float = 5.0
    # Seconds before a database statement gives up (a database that stopped answering).
    db_statement_timeout: float = 15.0
    # At least the concurrency one worker sees, or the pool closes and reopens connections.
    db_pool_size: int = 10
    db_max_overflow: int = 10
    # Behind PgBouncer in transaction pooling mode (docs/DEPLOYMENT.md).
    db_pgbouncer: bool = False
    log_level: str = "INFO"
    # Failed log-ins allowed per email and per client address (a `limits` rate string).
    login_failure_limit: str = "10/minute"
    # Requests per user (valid token) or else per client address on /api/ (SPEC §11), a
    # `limits` rate string; "unlimited" turns it off.
    api_rate_limit: str = "500/minute"
    # Where the limits count: in memory (one process) or e.g. redis://host:6379/0 (shared).
    rate_limit_storage_url: str = "memory://"
    max_body_bytes: int = 65536
    # Where mail goes: smtp://[user:pass@]host:port (STARTTLS when offered) or smtps://…;
    # unset: the log (development, test) or nothing at all (production: 503), app/mail.py.
    smtp_url: SecretStr | None = None
    mail_from: str = "accounts@localhost"
    # Seconds a mail may take to be handed over (connect, TLS, the whole conversation).
    smtp_timeout: float = 10.0
    # The link in a set-password mail; `{token}` is replaced by the token.
    password_reset_url: str = "http://127.0.0.1:8000/reset-password?token={token}"
    # Seconds a set-password link works.
    password_reset_max_age: int = 86400

    @model_validator(mode="after")
    def _secret_key_for_environment(self) -> Settings:
        if self.secret_key is None or not self.secret_key.get_secret_value():
            if self.app_env == "production":
                raise ValueError(
                    "SECRET_KEY must be set when APP_ENV=production: tokens cannot be signed"
                )
            logger.warning(
                "SECRET_KEY is not set: using a random key; tokens will not survive a restart"
            )
            self.secret_key = SecretStr(secrets.token_urlsafe(48))
        return self

    @model_validator(mode="after")
    def _smtp_url_scheme(self) -> Settings:
        url = self.smtp_url.get_secret_value() if self.smtp_url is not None else ""
        if url and not url.startswith(("smtp://", "smtps://")):
            raise ValueError("SMTP_URL must start with smtp:// or smtps://")
        return self

    @model_validator(mode="after")
    def _rate_strings(self) -> Settings:
        _rate("LOGIN_FAILURE_LIMIT", self.login_failure_limit, may_be_unlimited=False)
        _rate("API_RATE_LIMIT", self.api_rate_limit, may_be_unlimited=True)
        return self

    @property
    def api_limit(self) -> limits.RateLimitItem | None:
        """`API_RATE_LIMIT` parsed, or None when it is unlimited."""
        return _rate("API_RATE_LIMIT", self.api_rate_limit, may_be_unlimited=True)

    @property
    def signing_key(self) -> str:
        assert self.secret_key is not None  # set by the validator
        return self.secret_key.get_secret_value()


def _rate(name: str, value: str, *, may_be_unlimited: bool) -> limits.RateLimitItem | None:
    """A `limits` rate string of at least 1 per period, or None for `unlimited` where that is
    allowed; else a ValueError naming the setting (not echoing its value)."""
    if may_be_unlimited and value.strip().lower() == "unlimited":
        return None
    try:
        item = limits.parse(value)
    except ValueError:
        item = None
    if item is None or item.amount < 1:  # a limit of 0 would refuse every request
        raise ValueError(
            f"{name} must be a rate such as 500/minute or 10 per second"
            + (", or unlimited" if may_be_unlimited else "")
        )
    return item


@lru_cache
def get_settings() -> Settings:
    return Settings()
