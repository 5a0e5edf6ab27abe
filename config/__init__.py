"""One settings object shared by the web app, the RQ workers and the CLI.

Values come from the environment (the names below, upper-cased, are what operators set).
Tests build their own ``Settings(...)`` and pass it to ``create_app``.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Placeholders that are fine on a laptop and refused in production.
DEV_SECRET_KEY = "dev-insecure-secret-key"
DEV_ACCOUNT_SID = "AC00000000000000000000000000000000"
DEV_AUTH_TOKEN = "dev-auth-token"
PLACEHOLDERS = frozenset({DEV_SECRET_KEY, DEV_AUTH_TOKEN, "changeme", "change-me", ""})
APP_ENVS = ("development", "test", "production")
# Production minimums. Twilio auth tokens are 32 hex digits; a session-signing key should
# carry at least as much entropy.
MIN_SECRET_KEY_LENGTH = 32
MIN_AUTH_TOKEN_LENGTH = 32


PROJECT_ROOT = Path(__file__).resolve().parent.parent


def default_data_dir(project_root: Path = PROJECT_ROOT, environ=os.environ) -> Path:
    """Where the embedded SQLite file lives: absolute, whatever the working directory.

    In a source checkout (the ``pyproject.toml`` is beside the package) it is the
    checkout's ``instance/``; in an installed copy it is the user's data directory
    (``$XDG_DATA_HOME/sms-service``, by default ``~/.local/share/sms-service``).
    """
    if (project_root / "pyproject.toml").is_file():
        return project_root / "instance"
    base = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser().resolve() / "sms-service"


def default_database_url() -> str:
    """The embedded default: ``sms_service.db`` in :func:`default_data_dir`."""
    return f"sqlite:///{default_data_dir() / 'sms_service.db'}"


def normalise_database_url(url: str) -> str:
    """Accept the ``postgres://`` form most hosts hand out; SQLAlchemy knows only
    ``postgresql://`` (which :func:`sms_service.db.make_engine` runs on psycopg 3)."""
    url = url.strip()
    if url.startswith("postgres://"):
        return "postgresql://" + url[len("postgres://") :]
    return url


class ConfigError(ValueError):
    """The environment holds a setting the service refuses to run with."""


class SettingsError(ConfigError):
    """Settings that failed validation; the message has one ``NAME: problem`` line each."""


def describe_errors(exc: ValidationError) -> str:
    """One line per bad variable, named as operators set it (``QUIET_HOURS: ...``)."""
    lines = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        names = ".".join(str(part) for part in error["loc"]).upper()
        lines.append(f"{names}: {message}" if names else message)
    return "\n".join(lines)


class Settings(BaseSettings):
    """Typed settings; every field maps to an environment variable of the same name."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    def __init__(self, **values: object) -> None:
        # Every construction (web, workers, CLI, tests) fails the same readable way.
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsError(describe_errors(exc)) from None

    app_env: str = Field("development", description="development | test | production")
    database_url: str = Field(default_factory=default_database_url)
    redis_url: str = "redis://127.0.0.1:6379/0"

    twilio_account_sid: str = DEV_ACCOUNT_SID
    twilio_auth_token: str = DEV_AUTH_TOKEN
    twilio_from: str = "21333"
    short_code_countries: str = Field(
        "US,CA", description="ISO regions a short-code TWILIO_FROM reaches (issue 11)"
    )
    twilio_messaging_service_sid: str | None = None
    twilio_api_base_url: str | None = None
    public_base_url: str | None = Field(
        None, description="the external base URL Twilio signs; required in production"
    )
    trusted_proxies: int = Field(
        0, ge=0, le=10, description="reverse proxies whose X-Forwarded-* headers are believed"
    )
    max_content_length: int = Field(
        1024 * 1024, ge=1024, description="largest request body accepted, in bytes (else 413)"
    )

    program_name: str = "Rights Alerts"
    program_help_contact: str = "help@example.org"
    program_frequency: str = "Up to 4 msgs/mo"
    # Spanish replies' frequency text; empty: read from PROGRAM_FREQUENCY ("Up to N msgs/mo").
    program_frequency_es: str | None = None
    program_terms_url: str | None = None
    program_max_messages_per_30_days: int = 4
    program_privacy_url: str | None = None

    # The public petition page and the API (see README "Petition page and API").
    petition_confirm_window_hours: int = Field(48, ge=1, description="YES accepted this long")
    petition_confirm_interval_hours: int = Field(24, ge=1, description="1 confirmation text/number")
    petition_rate_limit_ip: str = "30 per minute;500 per hour"
    petition_rate_limit_number: str = "5 per hour"
    api_rate_limit: str = "300 per minute"

    secret_key: str = DEV_SECRET_KEY
    session_idle_minutes: int = Field(60, ge=1, description="console sessions end after this idle")
    ratelimit_storage_url: str | None = Field(
        None, description="where rate limits are counted (default REDIS_URL; memory:// per process)"
    )

    quiet_hours: str = "08:00-21:00"
    sender_mps: float = 100.0
    cost_per_segment: float = 0.0083
    default_timezone: str = "America/New_York"

    # The web process's gunicorn (gunicorn.conf.py reads these before the app starts).
    web_concurrency: int = Field(2, ge=1, description="gunicorn worker processes")
    web_threads: int = Field(8, ge=1, description="threads per gunicorn worker")
    web_access_log: bool = Field(True, description="gunicorn's access log on stdout")
    web_reuse_port: bool = Field(False, description="a listening socket per worker (SO_REUSEPORT)")
    # Inbound texts that arrive together share one transaction (sms_service.web.group_commit).
    inbound_group_commit: bool = Field(True, description="group commit of inbound texts")

    # The worker seals the consent log into its hash chain this often; an event committed
    # up to CONSENT_SEAL_GRACE_SECONDS after a later one was sealed is still taken.
    consent_seal_seconds: float = Field(10.0, gt=0)
    consent_seal_grace_seconds: float = Field(120.0, gt=0)

    # `sms-service export` on PostgreSQL copies a large export as this many ranges of its
    # order at once, each on a connection of its own (sms_service.services.copy_out).
    export_chunks: int = Field(2, ge=1, le=8)

    # How broadcast senders and workers work (sms_service.broadcasts.tuning.Tuning).
    broadcast_chunk: int = Field(50, ge=1)
    broadcast_concurrency: int = Field(100, ge=1)
    broadcast_pipelines: int = Field(2, ge=1)
    broadcast_lease_seconds: float = Field(60.0, gt=0)
    broadcast_client_timeout: float = Field(30.0, gt=0)
    broadcast_max_attempts: int = Field(5, ge=1)
    broadcast_retry_seconds: float = Field(15.0, ge=0)
    broadcast_lanes: int = Field(4, ge=1)
    broadcast_lane_seconds: float = Field(300.0, gt=0)
    broadcast_alive_seconds: float = Field(15.0, gt=0)
    broadcast_sweep_seconds: float = Field(30.0, gt=0)

    @field_validator("app_env", mode="before")
    @classmethod
    def _known_app_env(cls, value: object) -> str:
        # "PRODUCTION", "Production" and "production " must not start as development.
        text = str(value).strip().lower()
        if text not in APP_ENVS:
            raise ValueError(f"APP_ENV must be one of {', '.join(APP_ENVS)}, not {value!r}")
        return text

    @field_validator("public_base_url", mode="before")
    @classmethod
    def _absolute_base_url(cls, value: object) -> str | None:
        text = str(value).strip() if value is not None else ""
        if not text:
            return None
        parts = urlsplit(text)
        absolute = parts.scheme in ("http", "https") and bool(parts.netloc)
        if not absolute or parts.query or parts.fragment:
            raise ValueError(
                f"PUBLIC_BASE_URL must be an absolute http(s) URL such as "
                f"https://sms.example.org, not {text!r}"
            )
        return text.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _usable_database_url(cls, value: str) -> str:
        return normalise_database_url(value)

    @field_validator("short_code_countries")
    @classmethod
    def _known_regions(cls, value: str) -> str:
        import phonenumbers

        regions = [r.strip().upper() for r in value.split(",") if r.strip()]
        unknown = [r for r in regions if r not in phonenumbers.SUPPORTED_REGIONS]
        if not regions or unknown:
            raise ValueError(
                f"SHORT_CODE_COUNTRIES must list ISO country codes like US,CA; "
                f"not {', '.join(unknown) or repr(value)}"
            )
        return ",".join(regions)

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
    def _lease_outlasts_a_call(self) -> Settings:
        if self.broadcast_lease_seconds <= self.broadcast_client_timeout:
            raise ValueError(
                "BROADCAST_LEASE_SECONDS must be longer than BROADCAST_CLIENT_TIMEOUT: an "
                "attempt older than the lease cannot have a call in flight any more"
            )
        return self

    @model_validator(mode="after")
    def _refuse_placeholders_in_production(self) -> Settings:
        if self.app_env == "production":
            problems = production_problems(self)
            if problems:
                raise ConfigError("refusing to start in production: " + "; ".join(problems))
        return self

    @property
    def is_production(self) -> bool:
        """True when running for real (placeholders refused, no dev shortcuts)."""
        return self.app_env == "production"


def production_problems(settings: Settings) -> list[str]:
    """What stops ``settings`` from running in production, one phrase each ([] when none)."""
    problems = []
    placeholders = [
        name.upper()
        for name in ("secret_key", "twilio_auth_token")
        if getattr(settings, name) in PLACEHOLDERS
    ]
    if settings.twilio_account_sid == DEV_ACCOUNT_SID:
        placeholders.append("TWILIO_ACCOUNT_SID")
    if placeholders:
        problems.append("placeholder " + ", ".join(placeholders))
    for name, minimum in (
        ("secret_key", MIN_SECRET_KEY_LENGTH),
        ("twilio_auth_token", MIN_AUTH_TOKEN_LENGTH),
    ):
        value = getattr(settings, name)
        if value not in PLACEHOLDERS and len(value) < minimum:
            problems.append(f"{name.upper()} shorter than {minimum} characters")
    if not settings.public_base_url:
        # Without it the signed URL would come from the Host header, which anyone can forge.
        problems.append("PUBLIC_BASE_URL unset (the URL Twilio signs webhooks for)")
    return problems
