"""Where the data lives, asked from anywhere: ``sms-service info`` and the default database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from config import PROJECT_ROOT

BIN = Path(sys.executable).parent


def run(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | env
    return subprocess.run(
        [str(BIN / "sms-service"), *args], cwd=cwd, env=environ, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip


def test_info_outside_the_checkout_names_the_checkouts_database(tmp_path):
    shown = run("info", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    expected = PROJECT_ROOT / "instance" / "sms_service.db"
    assert f"DATABASE_URL        sqlite:///{expected}" in shown.stdout
    assert not (tmp_path / "instance").exists()  # nothing created where it was run


def test_info_hides_the_password_and_says_when_the_database_is_missing(tmp_path):
    shown = run(
        "info", cwd=tmp_path,
        DATABASE_URL="postgres://postgres:s3cret@127.0.0.1:5432/sms_no_such_db_h11",
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "s3cret" not in shown.stdout
    assert "postgresql://postgres:***@127.0.0.1:5432/sms_no_such_db_h11" in shown.stdout
    assert 'database "sms_no_such_db_h11" does not exist' in shown.stdout


def test_a_postgres_url_as_hosts_give_it_migrates_and_serves_commands(tmp_path, pg_db):
    url = "postgres://" + pg_db.split("://", 1)[1]
    upgraded = run("db", "upgrade", cwd=tmp_path, DATABASE_URL=url)
    assert upgraded.returncode == 0, upgraded.stderr
    created = run("campaign", "create", "PG1", "--title", "On Postgres", cwd=tmp_path,
                  DATABASE_URL=url)  # fmt: skip
    assert created.returncode == 0, created.stderr
    listed = run("campaign", "list", cwd=tmp_path, DATABASE_URL=url)
    assert "PG1" in listed.stdout
    assert "schema revision" in run("info", cwd=tmp_path, DATABASE_URL=url).stdout
