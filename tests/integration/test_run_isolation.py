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


def test_a_parallel_worker_leases_its_own_number_not_its_controllers():
    # The controller has leased a number (as this run has); its worker inherits the
    # environment and must take another, held under its own pid.
    assert os.environ[redis_db.LEASED_BY] == str(os.getpid())
    as_worker = ANOTHER_RUN.replace("redis_db.lease()", "redis_db.lease_for_worker()")
    worker = subprocess.Popen(
        [sys.executable, "-c", as_worker],
        cwd=ROOT, env=dict(os.environ), text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        theirs = int(worker.stdout.readline())
        assert theirs != redis_db.db_number()
        admin = redis.Redis(host=redis_db.HOST, port=redis_db.PORT, db=0)
        assert admin.get(redis_db.LEASE_KEY.format(theirs)) == str(worker.pid).encode()
        worker.communicate("\n", timeout=30)
        assert admin.get(redis_db.LEASE_KEY.format(theirs)) is None
        # The controller's lease is untouched by the worker's ending.
        mine = admin.get(redis_db.LEASE_KEY.format(redis_db.db_number()))
        assert mine == os.environ[redis_db.LEASED_BY].encode()
        admin.close()
    finally:
        worker.kill()


def test_a_pinned_number_is_refused_to_parallel_workers():
    env = {k: v for k, v in os.environ.items() if k != redis_db.LEASED_BY}
    env[redis_db.ENV] = "7"
    done = subprocess.run(
        [sys.executable, "-c", "from tests import redis_db; redis_db.lease_for_worker()"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode != 0
    assert "TEST_WORKERS=0" in done.stderr.splitlines()[-1]
