"""Settings come from the environment; production refuses placeholder secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from config import PROJECT_ROOT, Settings, default_data_dir


def test_environment_names_are_read(monkeypatch):
    monkeypatch.setenv("PROGRAM_NAME", "HK Alerts")
    monkeypatch.setenv("TWILIO_FROM", "55555")  # not the default
    monkeypatch.setenv("TWILIO_API_BASE_URL", "http://127.0.0.1:8765")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///x.db")
    s = Settings()
    assert s.program_name == "HK Alerts" and s.twilio_from == "55555"
    assert s.twilio_api_base_url == "http://127.0.0.1:8765" and s.database_url == "sqlite:///x.db"


def test_default_database_does_not_depend_on_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    url = Settings().database_url
    monkeypatch.chdir(tmp_path.parent)
    assert Settings().database_url == url
    path = Path(url.removeprefix("sqlite:///"))
    assert path.is_absolute() and path == PROJECT_ROOT / "instance" / "sms_service.db"
    assert not (tmp_path / "instance").exists()


def test_an_installed_copy_keeps_its_data_in_the_user_data_directory(tmp_path):
    site_packages = tmp_path / "site-packages"  # no pyproject.toml beside the package
    site_packages.mkdir()
    home_data = tmp_path / "data"
    assert default_data_dir(site_packages, {"XDG_DATA_HOME": str(home_data)}) == (
        home_data / "sms-service"
    )
    assert default_data_dir(site_packages, {}) == Path.home() / ".local/share/sms-service"


@pytest.mark.parametrize(
    "given, used",
    [
        ("postgres://u:p@db.example:5432/sms", "postgresql://u:p@db.example:5432/sms"),
        ("postgresql://u@h/sms", "postgresql://u@h/sms"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_the_postgres_scheme_hosts_hand_out_is_accepted(monkeypatch, given, used):
    monkeypatch.setenv("DATABASE_URL", given)
    assert Settings().database_url == used


def test_production_refuses_placeholders(monkeypatch):
    for name in ("SECRET_KEY", "TWILIO_AUTH_TOKEN", "TWILIO_ACCOUNT_SID"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(app_env="production")


REAL = dict(
    secret_key="a" * 40,
    twilio_auth_token="b" * 32,
    twilio_account_sid="AC" + "c" * 32,
    public_base_url="https://sms.example.org",
)


def test_production_accepts_real_secrets():
    assert Settings(app_env="production", **REAL).is_production


@pytest.mark.parametrize("value", ["PRODUCTION", "Production", "production ", " production\n"])
def test_app_env_is_read_whatever_its_case_and_spaces(monkeypatch, value):
    for name, setting in REAL.items():
        monkeypatch.setenv(name.upper(), setting)
    monkeypatch.setenv("APP_ENV", value)
    s = Settings()
    assert s.app_env == "production" and s.is_production
    # ...so the placeholders are refused, not accepted as in development.
    monkeypatch.delenv("TWILIO_AUTH_TOKEN")
    with pytest.raises(ValidationError, match="placeholder TWILIO_AUTH_TOKEN"):
        Settings()


@pytest.mark.parametrize("value", ["prod", "staging", "", "production-eu"])
def test_an_unknown_app_env_is_refused(value):
    with pytest.raises(
        ValidationError, match="APP_ENV must be one of development, test, production"
    ):
        Settings(app_env=value)


@pytest.mark.parametrize(
    ("name", "value"),
    [("secret_key", "x"), ("secret_key", "s" * 31), ("twilio_auth_token", "t" * 31)],
)
def test_production_refuses_short_secrets(name, value):
    with pytest.raises(ValidationError, match=f"{name.upper()} shorter than 32 characters"):
        Settings(app_env="production", **{**REAL, name: value})


def test_short_secrets_are_fine_in_development():
    assert Settings(secret_key="x", twilio_auth_token="y").secret_key == "x"


def test_production_refuses_to_start_without_public_base_url(monkeypatch):
    monkeypatch.delenv("PUBLIC_BASE_URL", raising=False)
    with pytest.raises(ValidationError, match="PUBLIC_BASE_URL unset"):
        Settings(app_env="production", **{**REAL, "public_base_url": None})
    with pytest.raises(ValidationError, match="PUBLIC_BASE_URL unset"):
        Settings(app_env="production", **{**REAL, "public_base_url": "  "})


@pytest.mark.parametrize(
    "bad", ["sms.example.org", "ftp://sms.example.org", "https://", "https://x.org/?a=1", "/sms"]
)
def test_public_base_url_must_be_an_absolute_http_url(bad):
    with pytest.raises(ValidationError, match="PUBLIC_BASE_URL must be an absolute http"):
        Settings(public_base_url=bad)


def test_public_base_url_loses_its_trailing_slash():
    assert Settings(public_base_url="https://sms.example.org/").public_base_url == (
        "https://sms.example.org"
    )


def test_proxies_are_not_trusted_unless_configured(monkeypatch):
    monkeypatch.delenv("TRUSTED_PROXIES", raising=False)
    assert Settings().trusted_proxies == 0
    monkeypatch.setenv("TRUSTED_PROXIES", "2")
    assert Settings().trusted_proxies == 2
    with pytest.raises(ValidationError, match="trusted_proxies"):
        Settings(trusted_proxies=-1)


@pytest.mark.parametrize("bad", ["25:00-21:00", "21:00-08:00", "soon"])
def test_bad_quiet_hours_are_refused_at_startup(bad):
    with pytest.raises(ValidationError, match="quiet_hours"):
        Settings(quiet_hours=bad)


def test_quiet_hours_off_is_accepted():
    assert Settings(quiet_hours="off").quiet_hours == "off"


def test_an_unknown_default_timezone_is_refused_at_start():
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        Settings(default_timezone="Mars/Olympus")
    assert Settings(default_timezone="America/Chicago").default_timezone == "America/Chicago"
