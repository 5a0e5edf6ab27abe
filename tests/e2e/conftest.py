"""Fixtures for process-level tests: ``sms-service dev`` as a new user runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.factories import free_port, wait_until_it_answers

BIN = Path(sys.executable).parent


def _log_tail(log, lines: int = 30) -> str:
    """The end of a server's log file (still open for writing), for a failure message."""
    log.flush()
    return "\n".join(Path(log.name).read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def running_dev(tmp_path: Path, **env_overrides: str) -> Iterator[dict]:
    """``sms-service dev`` in ``tmp_path`` (SQLite there), until the block ends."""
    port, sim_port, dead_redis = free_port(), free_port(), free_port()
    # The default SQLite file is the checkout's instance/ (whatever the working directory):
    # a test keeps its own.
    env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{dead_redis}/0", "QUIET_HOURS": "off",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'dev.db'}"}  # fmt: skip
    for name in ("TWILIO_API_BASE_URL", "PUBLIC_BASE_URL", "TWILIO_AUTH_TOKEN"):
        env.pop(name, None)
    env.update(env_overrides)
    log = open(tmp_path / "dev.log", "w")  # closed below
    proc = subprocess.Popen(
        [str(BIN / "sms-service"), "dev", "--port", str(port), "--sim-port", str(sim_port)],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        try:
            wait_until_it_answers(f"http://127.0.0.1:{port}/healthz", 30, proc)
            wait_until_it_answers(f"http://127.0.0.1:{sim_port}/sim/health", 30, proc)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; sms-service dev said:\n{_log_tail(log)}") from None
        yield {"web": f"http://127.0.0.1:{port}", "sim": f"http://127.0.0.1:{sim_port}",
               "cwd": tmp_path, "env": env, "log": tmp_path / "dev.log"}  # fmt: skip
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def dev_env() -> dict[str, str]:
    """Extra environment for ``dev_server``; a test module overrides it to set limits."""
    return {}


@pytest.fixture
def dev_server(tmp_path, dev_env):
    """The first run as a new user makes it: no Redis, SQLite, the simulator."""
    with running_dev(tmp_path, **dev_env) as server:
        yield server
