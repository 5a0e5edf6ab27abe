"""The login limit holds across gunicorn workers: counted in the shared Redis, not per
process. Two workers, new connections each time; the sixth failed sign-in is refused."""

from __future__ import annotations

import http.cookiejar
import os
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.factories import free_port, serving_gunicorn
from tests.redis_db import redis_url

BIN = Path(sys.executable).parent


@pytest.fixture
def gunicorn_two_workers(tmp_path, redis_connection):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'console.db'}",
           "REDIS_URL": redis_url(), "SECRET_KEY": "gunicorn-test-secret"}  # fmt: skip
    env.pop("RATELIMIT_STORAGE_URL", None)
    subprocess.run([str(BIN / "sms-service"), "db", "upgrade"], env=env, check=True, cwd=tmp_path,
                   capture_output=True)  # fmt: skip
    subprocess.run(
        [str(BIN / "sms-service"), "user", "create", "ada@example.org", "--role", "admin",
         "--password-stdin"],
        input="the right passphrase\n", text=True, env=env, check=True, cwd=tmp_path,
        capture_output=True,
    )  # fmt: skip
    with serving_gunicorn(env, tmp_path, port, "--workers", "2") as base:
        yield base


def attempt(base: str, password: str) -> int:
    """One sign-in from a fresh browser (new cookie jar, new connection): its status."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(base + "/login", timeout=10) as page:
        token = re.search(r'name="csrf-token" content="([^"]+)"', page.read().decode()).group(1)
    form = urllib.parse.urlencode(
        {"email": "ada@example.org", "password": password, "csrf_token": token}
    ).encode()
    try:
        with opener.open(base + "/login", data=form, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_failed_sign_ins_are_counted_across_workers(gunicorn_two_workers):
    codes = [attempt(gunicorn_two_workers, "a wrong passphrase") for _ in range(6)]
    assert codes == [401] * 5 + [429]
    assert attempt(gunicorn_two_workers, "the right passphrase") == 429
