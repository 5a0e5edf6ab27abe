"""One settings object shared by the web app, the RQ workers and the CLI.

Values come from the environment (the names below, upper-cased, are what operators set).
Tests build their own ``Settings(...)`` and pass it to ``create_app``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Placeholders that are fine on a laptop and refused in production.
DEV_SECRET_KEY = "dev-insecure-secret-key"
DEV_ACCOUNT_SID = "AC00000000000000000000000000000000"
DEV_AUTH_TOKEN = "dev-auth-token"
PLACEHOLDERS = frozenset({DEV_SECRET_KEY, DEV_AUTH_TOKEN, "changeme", "change-me", ""})


def default_database_url() -> str:
    """SQLite file under ``instance/`` in the working directory: the embedded default."""
    path = Path("instance").resolve() / "sms_service.db"
    return f"sqlite:///{path}"


class ConfigError(ValueError):
    """The environment holds a setting the service refuses to run with."""


class Settings(BaseSettings):
    """Typed settings; every field maps to an environment variable of the same name."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    app_env: str = Field("development", description="development | test | production")
    database_url: str = Field(default_factory=default_database_url)
    redis_url: str = "redis://127.0.0.1:6379/0"

    twilio_account_sid: str = DEV_ACCOUNT_SID
    twilio_auth_token: str = DEV_AUTH_TOKEN
    twilio_from: str = "21333"
    twilio_messaging_service_sid: str | None = None
    twilio_api_base_url: str | None = None
    public_base_url: str | None = None

    program_name: str = "Rights Alerts"
    program_help_contact: str = "help@example.org"
    program_frequency: str = "Up to 4 msgs/mo"
    program_terms_url: str | None = None
    program_max_messages_per_30_days: int = 4

    secret_key: str = DEV_SECRET_KEY
    session_idle_minutes: int = Field(60, ge=1, description="console sessions end after this idle")
    ratelimit_storage_url: str | None = Field(
        None, description="where rate limits are counted (default REDIS_URL; memory:// per process)"
    )
    phone_simulator: bool = Field(False, description="serve /phone in production too")

    quiet_hours: str = "08:00-21:00"
    sender_mps: float = 100.0
    cost_per_segment: float = 0.0083
    default_timezone: str = "America/New_York"

    @field_validator("quiet_hours")
    @classmethod
    def _valid_quiet_hours(cls, value: str) -> str:
        from sms_service.domain.quiet_hours import parse_window

        parse_window(value)  # raises ValueError with a clear message
        return value

    @field_validator("default_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from sms_service.domain.zones import zone_named

        zone_named(value)  # raises ValueError naming the unknown zone
        return value

    @model_validator(mode="after")
    def _refuse_placeholders_in_production(self) -> Settings:
        if self.app_env == "production":
            bad = [
                name
                for name in ("secret_key", "twilio_auth_token")
                if getattr(self, name) in PLACEHOLDERS
            ]
            if self.twilio_account_sid == DEV_ACCOUNT_SID:
                bad.append("twilio_account_sid")
            if bad:
                names = ", ".join(n.upper() for n in bad)
                raise ConfigError(f"refusing to start in production with placeholder {names}")
        return self

    @property
    def is_production(self) -> bool:
        """True when running for real (placeholders refused, no dev shortcuts)."""
        return self.app_env == "production"
