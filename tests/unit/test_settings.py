"""Settings come from the environment; production refuses placeholder secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from config import PROJECT_ROOT, Settings, SettingsError, default_data_dir
from sms_service.broadcasts.tuning import Tuning
from sms_service.cli.main import main


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
    with pytest.raises(SettingsError, match="SECRET_KEY"):
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
    with pytest.raises(SettingsError, match="placeholder TWILIO_AUTH_TOKEN"):
        Settings()


@pytest.mark.parametrize("value", ["prod", "staging", "", "production-eu"])
def test_an_unknown_app_env_is_refused(value):
    with pytest.raises(SettingsError, match="APP_ENV must be one of development, test, production"):
        Settings(app_env=value)


@pytest.mark.parametrize(
    ("name", "value"),
    [("secret_key", "x"), ("secret_key", "s" * 31), ("twilio_auth_token", "t" * 31)],
)
def test_production_refuses_short_secrets(name, value):
    with pytest.raises(SettingsError, match=f"{name.upper()} shorter than 32 characters"):
        Settings(app_env="production", **{**REAL, name: value})


def test_short_secrets_are_fine_in_development():
    assert Settings(secret_key="x", twilio_auth_token="y").secret_key == "x"


def test_production_refuses_to_start_without_public_base_url(monkeypatch):
    monkeypatch.delenv("PUBLIC_BASE_URL", raising=False)
    with pytest.raises(SettingsError, match="PUBLIC_BASE_URL unset"):
        Settings(app_env="production", **{**REAL, "public_base_url": None})
    with pytest.raises(SettingsError, match="PUBLIC_BASE_URL unset"):
        Settings(app_env="production", **{**REAL, "public_base_url": "  "})


@pytest.mark.parametrize(
    "bad", ["sms.example.org", "ftp://sms.example.org", "https://", "https://x.org/?a=1", "/sms"]
)
def test_public_base_url_must_be_an_absolute_http_url(bad):
    with pytest.raises(SettingsError, match="PUBLIC_BASE_URL must be an absolute http"):
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
    with pytest.raises(SettingsError, match="^TRUSTED_PROXIES: "):
        Settings(trusted_proxies=-1)


@pytest.mark.parametrize("bad", ["25:00-21:00", "21:00-08:00", "soon"])
def test_bad_quiet_hours_are_refused_at_startup(bad):
    with pytest.raises(SettingsError, match="^QUIET_HOURS: "):
        Settings(quiet_hours=bad)


def test_quiet_hours_off_is_accepted():
    assert Settings(quiet_hours="off").quiet_hours == "off"


def test_an_unknown_default_timezone_is_refused_at_start():
    with pytest.raises(SettingsError, match="DEFAULT_TIMEZONE: unknown time zone 'Mars/Olympus'"):
        Settings(default_timezone="Mars/Olympus")
    assert Settings(default_timezone="America/Chicago").default_timezone == "America/Chicago"


def test_each_bad_variable_is_one_line_named_as_operators_set_it():
    with pytest.raises(SettingsError) as caught:
        Settings(quiet_hours="soon", broadcast_chunk=0, broadcast_lanes="many")
    assert str(caught.value).splitlines() == [
        "QUIET_HOURS: quiet hours must look like '08:00-21:00' or 'off', not 'soon'",
        "BROADCAST_CHUNK: Input should be greater than or equal to 1",
        "BROADCAST_LANES: Input should be a valid integer, unable to parse string as an integer",
    ]


def test_the_command_line_prints_the_lines_not_a_traceback(monkeypatch):
    monkeypatch.setenv("QUIET_HOURS", "25:00-21:00")
    monkeypatch.setenv("BROADCAST_SWEEP_SECONDS", "-1")
    result = CliRunner().invoke(main, ["campaign", "list"])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "Error: QUIET_HOURS: " + str(_quiet_hours_error("25:00-21:00")),
        "BROADCAST_SWEEP_SECONDS: Input should be greater than 0",
    ]
    assert "Traceback" not in result.output


def _quiet_hours_error(value: str) -> str:
    from sms_service.domain.quiet_hours import parse_window

    with pytest.raises(ValueError) as caught:
        parse_window(value)
    return str(caught.value)


def test_broadcast_knobs_come_from_the_environment(monkeypatch):
    values = {
        "BROADCAST_CHUNK": "25", "BROADCAST_CONCURRENCY": "8", "BROADCAST_PIPELINES": "3",
        "BROADCAST_LEASE_SECONDS": "90", "BROADCAST_CLIENT_TIMEOUT": "20",
        "BROADCAST_MAX_ATTEMPTS": "7", "BROADCAST_RETRY_SECONDS": "5", "BROADCAST_LANES": "2",
        "BROADCAST_LANE_SECONDS": "120", "BROADCAST_ALIVE_SECONDS": "9",
        "BROADCAST_SWEEP_SECONDS": "11",
    }  # fmt: skip
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    tuning = Tuning.from_settings(Settings())
    assert (tuning.chunk, tuning.concurrency, tuning.pipelines) == (25, 8, 3)
    assert tuning.max_attempts == 7
    assert (tuning.lease.total_seconds(), tuning.client_timeout) == (90, 20)
    assert (tuning.retry_after.total_seconds(), tuning.lanes, tuning.lane_seconds) == (5, 2, 120)
    assert (tuning.alive_ttl.total_seconds(), tuning.sweep_seconds) == (9, 11)
    for name in values:
        monkeypatch.delenv(name)
    assert Tuning.from_settings(Settings()) == Tuning()  # the defaults are the same in both


def test_the_lease_must_outlast_a_call():
    with pytest.raises(SettingsError, match="^BROADCAST_LEASE_SECONDS must be longer than"):
        Settings(broadcast_lease_seconds=30, broadcast_client_timeout=30)
