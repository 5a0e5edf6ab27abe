"""Settings come from the environment; production refuses placeholder secrets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from config import Settings


def test_environment_names_are_read(monkeypatch):
    monkeypatch.setenv("PROGRAM_NAME", "HK Alerts")
    monkeypatch.setenv("TWILIO_FROM", "55555")  # not the default
    monkeypatch.setenv("TWILIO_API_BASE_URL", "http://127.0.0.1:8765")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///x.db")
    s = Settings()
    assert s.program_name == "HK Alerts" and s.twilio_from == "55555"
    assert s.twilio_api_base_url == "http://127.0.0.1:8765" and s.database_url == "sqlite:///x.db"


def test_default_database_is_sqlite_under_instance(monkeypatch, tmp_path):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    url = Settings().database_url
    assert url.startswith("sqlite:///") and url.endswith("instance/sms_service.db")


def test_production_refuses_placeholders(monkeypatch):
    for name in ("SECRET_KEY", "TWILIO_AUTH_TOKEN", "TWILIO_ACCOUNT_SID"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(app_env="production")


def test_production_accepts_real_secrets():
    s = Settings(
        app_env="production",
        secret_key="a" * 40,
        twilio_auth_token="b" * 32,
        twilio_account_sid="AC" + "c" * 32,
    )
    assert s.is_production


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
