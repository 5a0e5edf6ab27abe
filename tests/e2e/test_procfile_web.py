"""The Procfile's ``web:`` line exactly as a platform runs it: ``gunicorn.conf.py`` is read
(the project's gthread workers, keep-alive, settings from the environment) and a signed text is
served."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

from twilio.request_validator import RequestValidator

from tests.factories import answers, free_port, inbound_form, wait_for

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TOKEN = "procfile-auth-token"


def procfile_web() -> str:
    line = next(x for x in (ROOT / "Procfile").read_text().splitlines() if x.startswith("web:"))
    return line.split(":", 1)[1].strip()


def test_the_procfile_web_line_serves_texts_on_kept_alive_connections(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "PORT": str(port),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'web.db'}",
        "TWILIO_AUTH_TOKEN": TOKEN,
        "WEB_CONCURRENCY": "1",
        "WEB_THREADS": "2",
    }
    env.pop("PUBLIC_BASE_URL", None)
    subprocess.run([str(BIN / "sms-service"), "db", "upgrade"], env=env, check=True, cwd=ROOT)
    log = tmp_path / "web.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["bash", "-c", f"exec {procfile_web()}"], env=env, cwd=ROOT, stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/healthz"), timeout=40, interval=0.1,
                 what="the web process")  # fmt: skip
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        url = f"http://127.0.0.1:{port}/sms/inbound"
        for number, body in [("+12025550123", "JOIN"), ("+12025550123", "STOP")]:
            form = inbound_form(number, body)
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(url, form),
            }
            connection.request("POST", "/sms/inbound", urllib.parse.urlencode(form), headers)
            response = connection.getresponse()
            assert response.status == 200, response.read()
            assert response.getheader("Connection", "").lower() != "close"  # kept alive
            response.read()
        connection.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    text = log.read_text()
    # gthread, closing its own socket when it stops (sms_service.web.gunicorn_worker).
    assert "Using worker: sms_service.web.gunicorn_worker.ThreadWorker" in text
    assert '"POST /sms/inbound HTTP/1.1" 200' in text  # the access log line
    assert "+12025550123" not in text  # numbers never in the log in clear
