"""``sms-service dev`` as a new user runs it: no Redis, SQLite, the simulator as the phone."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.factories import sim_messages, wait_for

BIN = Path(sys.executable).parent


def text(sim: str, from_: str, body: str) -> dict:
    request = urllib.request.Request(
        sim + "/sim/inbound",
        data=json.dumps({"from": from_, "body": body}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def test_first_run_answers_sign_through_the_simulator(dev_server):
    signed = text(dev_server["sim"], "+12025550123", "SIGN")
    assert signed["webhook_status"] == 200
    [reply] = signed["replies"]
    assert "Release the 64" in reply and "Msg & data rates may apply" in reply
    [thanks] = text(dev_server["sim"], "+12025550123", "Ada Lovelace")["replies"]
    assert "1 signature" in thanks
    assert (dev_server["cwd"] / "dev.db").exists()
    assert (
        f"database         sqlite:///{dev_server['cwd'] / 'dev.db'}"
        in (dev_server["cwd"] / "dev.log").read_text()
    )
    with urllib.request.urlopen(dev_server["web"] + "/phone?number=%2B12025550123") as page:
        assert page.status == 200 and "Ada Lovelace" in page.read().decode()


def test_numbers_are_masked_in_the_logs(dev_server):
    text(dev_server["sim"], "+12025550199", "JOIN")
    with urllib.request.urlopen(dev_server["web"] + "/phone?number=%2B12025550199") as page:
        assert page.status == 200
    log = dev_server["cwd"] / "dev.log"
    wait_for(lambda: "GET /phone?number=" in log.read_text(), timeout=10, interval=0.1,
             what="the request line, logged after the response")  # fmt: skip
    logged = log.read_text()
    assert "GET /phone?number=%2B1********99" in logged
    assert "2025550199" not in logged


def test_broadcast_from_the_cli_reaches_the_simulated_phone(dev_server):
    """The CLI (another process) cannot reach the in-process queue: the worker's sweeper
    finds the due run in the database and sends it, within seconds (dev sweeps every 3 s,
    not every BROADCAST_SWEEP_SECONDS' 30)."""
    text(dev_server["sim"], "+12025550123", "JOIN")
    created = subprocess.run(
        [str(BIN / "sms-service"), "broadcast", "create", "--audience", "all",
         "--body", "The 64 are still detained. Call Secretary Cheng today."],
        cwd=dev_server["cwd"], env=dev_server["env"], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr

    def phone_got_the_broadcast() -> list[dict]:
        sent = sim_messages(dev_server["sim"], to="+12025550123")
        return sent if any(m["direction"] == "outbound-api" for m in sent) else []

    began = time.monotonic()
    sent = wait_for(phone_got_the_broadcast, timeout=45, interval=0.2,
                    what="the broadcast at the phone")  # fmt: skip
    assert time.monotonic() - began < 12, "the dev worker's sweep came late"
    # What the phone was sent, newest first: the broadcast, then the reply to JOIN.
    assert [(m["direction"], m["body"][:12]) for m in sent] == [
        ("outbound-api", "The 64 are s"), ("outbound-reply", "Rights Alert"),
    ]  # fmt: skip


def test_stop_through_the_simulator_is_answered_by_the_service(dev_server):
    """dev sends from a short code with no Messaging Service: nobody but the service
    answers STOP, so the phone gets the service's own confirmation."""
    text(dev_server["sim"], "+12025550177", "JOIN")
    stopped = text(dev_server["sim"], "+12025550177", "STOP")
    assert stopped["opt_out_type"] is None
    [confirmation] = stopped["replies"]
    assert "unsubscribed and will receive no more messages" in confirmation
