"""A request that fails inside gunicorn, on PostgreSQL: the traceback in the error log has
the phone number masked (PostgreSQL's ``Key (phone)=(…)`` detail included) and no SQL
parameters."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tests.factories import answers, free_port, wait_for

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


def test_a_failed_request_under_gunicorn_logs_a_masked_traceback(pg_db, tmp_path):
    port = free_port()
    log = tmp_path / "gunicorn.log"
    env = {**os.environ, "APP_ENV": "test", "DATABASE_URL": pg_db, "PYTHONPATH": str(ROOT)}
    command = [
        shutil.which("gunicorn", path=str(BIN)), "tests.e2e.failing_wsgi:app",
        "--bind", f"127.0.0.1:{port}", "--workers", "1", "--error-logfile", "-",
        "--access-logfile", "-",
    ]  # fmt: skip
    with log.open("w") as out:
        proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(lambda: answers(base + "/healthz"), timeout=40, interval=0.1, what=base)
            try:
                urllib.request.urlopen(base + "/fail", timeout=10)
                raise AssertionError("the failing route answered")
            except urllib.error.HTTPError as exc:
                assert exc.code == 500
            wait_for(lambda: "already exists" in log.read_text(), timeout=10, what="the log")
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    logged = log.read_text()
    assert "Traceback" in logged and "IntegrityError" in logged
    assert "Key (phone)=(+1********77) already exists" in logged
    assert "+12025550177" not in logged and "SQL parameters hidden" in logged
