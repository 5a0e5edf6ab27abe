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


def test_importing_every_test_module_leases_nothing():
    env = {k: v for k, v in os.environ.items() if k != redis_db.ENV}
    code = (
        "import importlib, os, pathlib\n"
        "for path in sorted(pathlib.Path('tests').rglob('test_*.py')):\n"
        "    importlib.import_module('.'.join(path.with_suffix('').parts))\n"
        f"print(os.environ.get({redis_db.ENV!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "None"


def test_a_lease_whose_run_died_is_taken_over_and_a_live_one_is_not():
    admin = redis.Redis(host=redis_db.HOST, port=redis_db.PORT, db=0)
    key = f"sms_test:lease-takeover-test:{os.getpid()}"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    try:
        admin.set(key, int(gone.stdout), ex=60)  # that process has exited
        assert redis_db._take_abandoned(admin, key)
        assert admin.get(key) == str(os.getpid()).encode()
        assert not redis_db._take_abandoned(admin, key)  # held by this live process
    finally:
        admin.delete(key)
        admin.close()
