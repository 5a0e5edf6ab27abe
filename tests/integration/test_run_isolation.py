"""Test runs side by side keep to their own Redis database (see :mod:`tests.redis_db`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests import redis_db

pytestmark = pytest.mark.slow  # a second test run as a process

ROOT = Path(__file__).resolve().parents[2]
ANOTHER_RUN = (
    "from tests import redis_db; n = redis_db.lease(); print(n, flush=True); "
    "input(); redis_db.release()"
)


def test_a_second_run_leases_another_redis_db_and_gives_it_back():
    env = {k: v for k, v in os.environ.items() if k != redis_db.ENV}
    other = subprocess.Popen(
        [sys.executable, "-c", ANOTHER_RUN], cwd=ROOT, env=env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        theirs = int(other.stdout.readline())
        assert theirs != redis_db.db_number()
        admin = redis.Redis(host=redis_db.HOST, port=redis_db.PORT, db=0)
        key = redis_db.LEASE_KEY.format(theirs)
        assert admin.get(key) == str(other.pid).encode()
        other.communicate("\n", timeout=30)
        assert other.returncode == 0
        assert admin.get(key) is None  # given back when that run ended
        admin.close()
    finally:
        other.kill()
