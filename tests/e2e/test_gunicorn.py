"""The Procfile's web process for real: migrate with the CLI, serve with gunicorn, text it.

A separate process on a real port, configured only through the environment, as an
operator would run it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from twilio.request_validator import RequestValidator

from tests.factories import free_port, inbound_form, serving_gunicorn

BIN = Path(sys.executable).parent
TOKEN = "e2e-auth-token"


@pytest.fixture
def served(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'e2e.db'}",
        "TWILIO_AUTH_TOKEN": TOKEN,
        "PROGRAM_NAME": "HK Alerts",
        "PORT": str(port),
    }
    env.pop("PUBLIC_BASE_URL", None)
    subprocess.run([str(BIN / "sms-service"), "db", "upgrade"], env=env, check=True, cwd=tmp_path)
    with serving_gunicorn(env, tmp_path, port, "--workers", "1") as base:
        yield base


def post(url: str, form: dict[str, str], signature: str | None):
    data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(url, data=data, method="POST")
    if signature:
        request.add_header("X-Twilio-Signature", signature)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_gunicorn_serves_the_signed_webhook(served):
    url = served + "/sms/inbound"
    form = inbound_form("+12025550123", "JOIN")
    signature = RequestValidator(TOKEN).compute_signature(url, form)
    status, body = post(url, form, signature)
    assert status == 200 and "HK Alerts" in body and "Msg &amp; data rates may apply" in body
    assert post(url, form, "bogus")[0] == 403
    # The same MessageSid again (a Twilio retry) answers the same.
    assert post(url, form, signature) == (200, body)


def test_bad_settings_stop_gunicorn_with_one_line_each(tmp_path):
    env = {**os.environ, "QUIET_HOURS": "soon", "BROADCAST_LANES": "0", "PORT": str(free_port())}
    gunicorn = shutil.which("gunicorn", path=str(BIN))
    done = subprocess.run(
        [gunicorn, "sms_service.web.wsgi:app", "--bind", f"127.0.0.1:{env['PORT']}"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "QUIET_HOURS: quiet hours must look like '08:00-21:00' or 'off', not 'soon'\n" in (
        done.stderr
    )
    assert "BROADCAST_LANES: Input should be greater than or equal to 1\n" in done.stderr
    assert "Traceback" not in done.stderr and "App failed to load" in done.stderr
