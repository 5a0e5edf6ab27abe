"""A worker killed outright leaves nothing running, and another worker takes over scheduling.

Real processes: ``sms-service broadcast worker`` (what the Procfile runs) on the run's own
Redis database, killed with SIGKILL alone (not its process tree), as the OOM killer does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from rq import Queue
from rq.scheduler import RQScheduler

from tests.factories import wait_for
from tests.redis_db import redis_url
from workers import QUEUE_BROADCASTS
from workers.lifetime import SCHEDULER_RETRY_SECONDS, SCHEDULER_TICK

from .test_broadcast_workers import descendants

BIN = Path(sys.executable).parent
LOCK = RQScheduler.get_locking_key(QUEUE_BROADCASTS)
# The stated bound (workers.lifetime): the old scheduler stops within a tick, an idle
# replacement retries the lock every SCHEDULER_RETRY_SECONDS. Slack for a loaded machine.
TAKEOVER_BOUND = SCHEDULER_TICK + SCHEDULER_RETRY_SECONDS + 5


def running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def start_worker(pg_db, tmp_path, redis_connection):
    started: list[subprocess.Popen] = []
    env = os.environ | {"DATABASE_URL": pg_db, "REDIS_URL": redis_url(), "APP_ENV": "test"}

    def start() -> subprocess.Popen:
        log = open(tmp_path / f"worker{len(started)}.log", "wb")  # child owns it
        proc = subprocess.Popen(
            [str(BIN / "sms-service"), "broadcast", "worker"], env=env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        for pid in [proc.pid, *descendants(proc.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(timeout=10)


def lock_owner(redis_connection) -> str | None:
    value = redis_connection.get(LOCK)
    return value.decode() if value else None


def test_sigkill_of_the_worker_ends_its_scheduler_and_horse_and_a_standby_takes_over(
    start_worker, redis_connection
):
    first = start_worker()
    owner = wait_for(lambda: lock_owner(redis_connection), timeout=30, what="the first scheduler")
    [scheduler] = wait_for(lambda: descendants(first.pid), timeout=10, what="its scheduler")
    queue = Queue(QUEUE_BROADCASTS, connection=redis_connection)
    queue.enqueue("time.sleep", 120, job_timeout=300)  # a long job: a horse is running
    horse = wait_for(
        lambda: [p for p in descendants(first.pid) if p != scheduler], timeout=20,
        what="the work horse",
    )[0]  # fmt: skip
    standby = start_worker()  # another worker, idle: the lock is taken
    wait_for(lambda: descendants(standby.pid) == [] and running(standby.pid), timeout=10)
    time.sleep(2)  # it has tried the lock at start and failed
    assert lock_owner(redis_connection) == owner

    os.kill(first.pid, signal.SIGKILL)  # the worker alone, as the OOM killer would
    first.wait(timeout=10)
    killed_at = time.monotonic()
    wait_for(lambda: not running(scheduler) and not running(horse), timeout=5,
             what="the dead worker's scheduler and horse to end")  # fmt: skip

    new_owner = wait_for(
        lambda: (lock_owner(redis_connection) or owner) != owner and lock_owner(redis_connection),
        timeout=TAKEOVER_BOUND + 5, interval=0.2, what="the standby to take the scheduler lock",
    )  # fmt: skip
    took = time.monotonic() - killed_at
    assert took <= TAKEOVER_BOUND, f"took {took:.1f}s"
    assert new_owner != owner
    # RQ takes the lock, then forks the scheduler process: it may show a moment later.
    wait_for(lambda: descendants(standby.pid), timeout=5, interval=0.05,
             what="the standby's scheduler process")  # fmt: skip

    # And it schedules: a job due in a second is moved to the queue and run.
    job = queue.enqueue_in(timedelta(seconds=1), "time.sleep", 0)
    wait_for(lambda: job.get_status(refresh=True) == "finished", timeout=20,
             what="the scheduled job, run by the standby")  # fmt: skip


def test_a_worker_stopped_normally_releases_the_lock_for_the_next(start_worker, redis_connection):
    first = start_worker()
    wait_for(lambda: lock_owner(redis_connection), timeout=30, what="the first scheduler")
    [scheduler] = wait_for(lambda: descendants(first.pid), timeout=10, what="its scheduler")
    first.send_signal(signal.SIGTERM)
    first.wait(timeout=60)
    wait_for(lambda: not running(scheduler), timeout=5, what="the scheduler to end")
    assert lock_owner(redis_connection) is None
    start_worker()
    wait_for(lambda: lock_owner(redis_connection), timeout=30, what="the next scheduler")
