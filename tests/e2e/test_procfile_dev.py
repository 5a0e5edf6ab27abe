"""Procfile.dev under honcho, as the README tells a newcomer: web (gunicorn), worker and
carrier simulator on PostgreSQL and Redis, wired together; Ctrl-C ends every process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from config import PROJECT_ROOT
from tests.factories import free_port, sim_messages, wait_for, wait_until_it_answers
from tests.integration.test_broadcast_workers import descendants
from tests.redis_db import redis_url

BIN = Path(sys.executable).parent
PHONE = "+12025550142"


def text(sim: str, body: str) -> dict:
    request = urllib.request.Request(
        sim + "/sim/inbound", data=json.dumps({"from": PHONE, "body": body}).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=20) as response:
        return json.load(response)


@pytest.fixture
def stack(tmp_path, pg_db, redis_connection):
    port, sim_port = free_port(), free_port()
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PORT": str(port), "SIM_PORT": str(sim_port), "WEB_CONCURRENCY": "1",
        "DATABASE_URL": pg_db, "REDIS_URL": redis_url(), "QUIET_HOURS": "off",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "TWILIO_API_BASE_URL": f"http://127.0.0.1:{sim_port}",
    }  # fmt: skip
    for name in ("TWILIO_AUTH_TOKEN", "TWILIO_ACCOUNT_SID", "APP_ENV"):
        env.pop(name, None)
    log = open(tmp_path / "honcho.log", "wb")  # closed below
    proc = subprocess.Popen(
        [str(BIN / "honcho"), "-f", str(PROJECT_ROOT / "Procfile.dev"), "start"],
        cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        wait_until_it_answers(f"http://127.0.0.1:{port}/healthz", timeout=60, process=proc)
        wait_until_it_answers(f"http://127.0.0.1:{sim_port}/sim/health", timeout=60, process=proc)
        yield {"proc": proc, "sim": f"http://127.0.0.1:{sim_port}", "env": env,
               "log": tmp_path / "honcho.log"}  # fmt: skip
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                for pid in [proc.pid, *descendants(proc.pid)]:
                    os.kill(pid, signal.SIGKILL)
                proc.wait()
        log.close()


def test_procfile_dev_runs_web_worker_and_simulator_together(stack):
    sim = stack["sim"]
    joined = text(sim, "JOIN")
    assert joined["webhook_status"] == 200 and "Msg & data rates" in joined["replies"][0]

    created = subprocess.run(
        [str(BIN / "sms-service"), "broadcast", "create", "--audience", "all",
         "--body", "Procfile.dev: the worker sent this"],
        env=stack["env"], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert "enqueued on broadcasts" in created.stdout  # the real Redis, not the sweeper
    sent = wait_for(
        lambda: [m for m in sim_messages(sim, to=PHONE) if m["direction"] == "outbound-api"],
        timeout=60, interval=0.5, what="the broadcast at the phone",
    )  # fmt: skip
    assert [m["body"] for m in sent] == ["Procfile.dev: the worker sent this"]
    assert stack["proc"].poll() is None  # nothing exited and took the others down

    children = descendants(stack["proc"].pid)
    stack["proc"].send_signal(signal.SIGINT)  # Ctrl-C
    stack["proc"].wait(timeout=30)
    wait_for(lambda: not any(os.path.exists(f"/proc/{pid}/status") and
                             "zombie" not in open(f"/proc/{pid}/status").read()
                             for pid in children),
             timeout=20, what="every process of the stack to end")  # fmt: skip
