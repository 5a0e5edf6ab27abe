"""Every documented command, given bad input as a newcomer would, answers with one clear
line and a non-zero exit: never a traceback, never a silent success."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import free_port

BIN = Path(sys.executable).parent


def run(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "sms-service"), *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one ``Error:`` line, after checking there is no traceback and nothing else."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.fixture
def env(tmp_path, sqlite_url):
    """A migrated, empty SQLite database and no Redis (a port nobody listens on)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "PUBLIC_"))}
    return environ | {
        "DATABASE_URL": sqlite_url, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "APP_ENV": "development", "QUIET_HOURS": "off",
    }  # fmt: skip


CASES = [
    # (args, expected in the error line, exit status)
    (["export", "consent", "-o", "/nonexistent/dir/x.csv"],
     "cannot use /nonexistent/dir/x.csv: No such file or directory", 1),
    (["export", "signatures", "--campaign", "NOPE"], "no campaign with keyword NOPE", 1),
    (["export", "consent", "--since", "yesterday"], "'yesterday' is not an ISO date", 2),
    (["consent", "history", "+12025550999"], "no consent events for +1********99", 1),
    (["consent", "history", "not-a-number"], "not a phone number", 2),
    (["consent", "resolve", "SM1", "--keep", "--opt-out", "--by", "Ada"],
     "--opt-out and --keep contradict each other", 2),
    (["consent", "resolve", "SM1", "--by", "Ada"], "say --opt-out or --keep", 2),
    (["consent", "resolve", "SMnope", "--keep", "--by", "Ada"], "SMnope", 1),
    (["broadcast", "create", "--body", "Hi", "--audience", "all", "--at", "2020-01-01T10:00"],
     "2020-01-01 10:00 America/New_York is in the past", 1),
    (["broadcast", "create", "--body", "Hi", "--audience", "all", "--at", "2030-01-01T10:00",
      "--now"], "--at and --now contradict each other", 2),
    (["broadcast", "create", "--body", "Hi", "--audience", "all"],
     "audience all has no subscribed recipients", 1),
    (["broadcast", "create", "--body", "Hi", "--audience", "file:/nonexistent/list.csv"],
     "cannot use /nonexistent/list.csv: No such file or directory", 1),
    (["broadcast", "create", "--body", "Hi", "--audience", "everyone"], "audience must be", 2),
    (["broadcast", "status", "999"], "no broadcast 999", 1),
    (["broadcast", "cancel", "999"], "no broadcast 999", 1),
    (["broadcast", "worker"], "Redis", 1),
    (["db", "upgrade", "--revision", "-1"], "migration", 1),
    (["db", "upgrade", "--revision", "0001"], "cannot go back", 1),
    (["db", "upgrade", "--revision", "nope"], "migration", 1),
    (["campaign", "create", "bad keyword!", "--title", "T"], "keyword", 1),
]  # fmt: skip


@pytest.mark.parametrize(("args", "expected", "status"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_gets_one_clear_line(tmp_path, env, args, expected, status):
    result = run(*args, cwd=tmp_path, env=env)
    line = error_line(result)
    assert expected in line
    assert result.returncode == status


def test_a_database_that_does_not_exist_says_how_to_create_it(tmp_path, env):
    env["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/sms_h11_missing_db"
    line = error_line(run("campaign", "list", cwd=tmp_path, env=env))
    assert 'database "sms_h11_missing_db" does not exist' in line
    assert "sms-service db create" in line


def test_an_unmigrated_database_says_to_upgrade(tmp_path, env):
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'empty.db'}"
    line = error_line(run("campaign", "list", cwd=tmp_path, env=env))
    assert "run `sms-service db upgrade`" in line


def test_an_unreachable_database_server_is_named(tmp_path, env):
    env["DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:{free_port()}/sms"
    line = error_line(run("consent", "pending", cwd=tmp_path, env=env))
    assert "cannot reach postgresql://postgres@127.0.0.1" in line


def test_a_malformed_database_url_is_named(tmp_path, env):
    env["DATABASE_URL"] = "not a url"
    assert "DATABASE_URL" in error_line(run("campaign", "list", cwd=tmp_path, env=env))


@pytest.mark.parametrize("command", [["dev"], ["serve"], ["carrier-sim"]])
def test_a_busy_port_is_refused_before_any_banner(tmp_path, env, command):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(*command, "--port", str(port), cwd=tmp_path, env=env)
    line = error_line(result)
    assert f"port {port} on 127.0.0.1 is in use" in line
    assert "http://" not in result.stdout  # no banner claimed the URL


def test_one_recipient_is_not_plural(tmp_path, env):
    from sqlalchemy import create_engine, text

    engine = create_engine(env["DATABASE_URL"])
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO subscribers (phone, status, created_at, updated_at) "
            "VALUES ('+12025550123', 'subscribed', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        ))  # fmt: skip
    engine.dispose()
    result = run("broadcast", "create", "--body", "Hi", "--audience", "all", "--now",
                 cwd=tmp_path, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "1 recipient x 1 GSM-7 segment" in result.stdout
