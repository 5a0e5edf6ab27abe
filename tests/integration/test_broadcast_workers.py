"""Broadcasts end to end: real RQ workers in their own processes (``rq worker
--with-scheduler``), PostgreSQL, Redis (the run's own db, flushed around each test) and the carrier
simulator at 150 ms latency, checked from the simulator's side: who got how many texts.

Workers run with a short lease (4 s), alive key (3 s) and sweep interval (1 s), so a dead
worker is noticed in seconds, not minutes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from datetime import timedelta

import pytest
from rq import Queue
from rq.registry import ScheduledJobRegistry
from sqlalchemy import func, select, update

from sms_service import broadcasts as svc
from sms_service.broadcasts.runs import lock_run
from sms_service.db import make_engine, session_scope
from sms_service.domain.keywords import Intent
from sms_service.domain.quiet_hours import next_allowed_time
from sms_service.models import BroadcastDelivery, BroadcastRun, Subscriber, utcnow
from sms_service.program import program_from
from sms_service.services.inbound import InboundSms, receive
from tests.factories import (
    TEST_ACCOUNT_SID,
    TEST_AUTH_TOKEN,
    add_subscribers,
    clear_sim,
    delivery_counts,
    make_settings,
    new_sid,
    phone,
    runs_of,
    schedule_broadcast,
    sim_messages,
    texts_per_number,
    wait_for,
    zone_at_local_hour,
)
from tests.redis_db import redis_url
from workers import QUEUE_BROADCASTS
from workers.broadcast import enqueue_start, start_run
from workers.job_ids import occurrence_job_id

pytestmark = pytest.mark.slow  # real worker processes, killed and restarted

delivery_table = BroadcastDelivery.__table__
run_table = BroadcastRun.__table__


SIM_LATENCY_MS = 150  # ms, for conftest's module_sim: sends still in flight at a kill


@pytest.fixture
def queue(redis_connection):
    return Queue(QUEUE_BROADCASTS, connection=redis_connection)


@pytest.fixture
def engine(pg_db, module_sim):
    clear_sim(module_sim.url)
    engine = make_engine(pg_db)
    yield engine
    engine.dispose()


class WorkerProcess:
    """``rq worker`` in its own process group, so a kill takes its horse and scheduler."""

    def __init__(self, env: dict[str, str], log_path) -> None:
        rq = shutil.which("rq") or os.path.join(os.path.dirname(os.sys.executable), "rq")
        self.log = open(log_path, "ab")  # closed in stop()
        self.process = subprocess.Popen(
            [rq, "worker", "--with-scheduler", "-w", "workers.broadcast_worker.BroadcastWorker",
             "--url", redis_url(), "--name", f"test-{uuid.uuid4().hex[:8]}", QUEUE_BROADCASTS],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def kill(self) -> None:
        """SIGKILL the worker, its work horse and its scheduler: no clean-up at all.

        The horse runs in a process group of its own (RQ calls ``setpgrp``), so the whole
        tree is found through ``/proc`` and killed at once.
        """
        for pid in [self.process.pid, *descendants(self.process.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=10)
        self.log.close()


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, read from ``/proc``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@pytest.fixture
def workers(pg_db, module_sim, tmp_path):
    """Start workers with the test environment (plus overrides); all killed at the end."""
    started: list[WorkerProcess] = []
    base = os.environ | {
        "DATABASE_URL": pg_db, "REDIS_URL": redis_url(), "TWILIO_API_BASE_URL": module_sim.url,
        "TWILIO_ACCOUNT_SID": TEST_ACCOUNT_SID, "TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN,
        "APP_ENV": "test", "PUBLIC_BASE_URL": "", "QUIET_HOURS": "off", "SENDER_MPS": "0",
        "BROADCAST_SWEEP_SECONDS": "1", "BROADCAST_LEASE_SECONDS": "4",
        "BROADCAST_CLIENT_TIMEOUT": "3", "BROADCAST_ALIVE_SECONDS": "3", "BROADCAST_LANES": "2",
        "BROADCAST_CHUNK": "40", "BROADCAST_CONCURRENCY": "8",
    }  # fmt: skip

    def start(**overrides: str) -> WorkerProcess:
        worker = WorkerProcess(base | overrides, tmp_path / "worker.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()


def count(engine, run_id: int, status: str) -> int:
    with engine.connect() as conn:
        query = select(func.count()).where(
            delivery_table.c.run_id == run_id, delivery_table.c.status == status
        )
        return conn.execute(query).scalar_one()


def run_row(engine, run_id: int):
    with engine.connect() as conn:
        return conn.execute(select(run_table).where(run_table.c.id == run_id)).one()


def closed(engine, run_id: int) -> bool:
    return run_row(engine, run_id).finished_at is not None


def assert_exactly_one_each(sim_url: str, numbers: list[str]) -> None:
    per_number = texts_per_number(sim_url)
    assert {n: per_number[n] for n in numbers} == dict.fromkeys(numbers, 1)
    assert sum(per_number.values()) == len(numbers)


# -- exactly once ----------------------------------------------------------------------------


def test_worker_killed_mid_broadcast_then_restarted(engine, queue, workers, module_sim):
    add_subscribers(engine, 400)
    _, run = schedule_broadcast(engine)
    worker = workers()
    enqueue_start(queue, run)
    wait_for(lambda: count(engine, run.id, "sent") >= 80, timeout=30, what="80 sent")
    worker.kill()
    stuck = count(engine, run.id, "sending")  # claims committed, outcomes never written
    seen_by_carrier = len(sim_messages(module_sim.url))
    assert stuck > 0 and count(engine, run.id, "sent") < 400
    assert seen_by_carrier > count(engine, run.id, "sent")  # calls whose answers were lost

    workers()
    wait_for(lambda: closed(engine, run.id), timeout=60, what="the run to close")
    assert delivery_counts(engine, run.id) == {("sent", None): 400}
    assert_exactly_one_each(module_sim.url, [phone(i) for i in range(400)])
    assert run_row(engine, run.id).status == "sent"


def test_worker_killed_and_redis_emptied(engine, queue, redis_connection, workers, module_sim):
    add_subscribers(engine, 300)
    _, run = schedule_broadcast(engine)
    worker = workers()
    enqueue_start(queue, run)
    wait_for(lambda: count(engine, run.id, "sent") >= 60, timeout=30, what="60 sent")
    worker.kill()
    redis_connection.flushdb()  # every queued sender, registry and key is gone
    workers()  # only the sweeper, reading the database, can bring the run back
    wait_for(lambda: closed(engine, run.id), timeout=60, what="the run to close")
    assert delivery_counts(engine, run.id) == {("sent", None): 300}
    assert_exactly_one_each(module_sim.url, [phone(i) for i in range(300)])


# -- STOP and cancel while sending -----------------------------------------------------------


def test_nothing_is_sent_to_a_number_after_its_stop_commits(engine, queue, workers, module_sim):
    add_subscribers(engine, 300)
    _, run = schedule_broadcast(engine)
    workers(SENDER_MPS="50")  # about six seconds for the 300
    enqueue_start(queue, run)
    wait_for(lambda: count(engine, run.id, "sent") >= 30, timeout=30, what="30 sent")
    program = program_from(make_settings(engine.url.render_as_string(hide_password=False)))
    seen_at_stop: dict[str, int] = {}

    def stop(number: str) -> None:
        sms = InboundSms(message_sid=new_sid(), from_number=number, to_number="21333",
                         body="STOP", received_at=utcnow())  # fmt: skip
        assert receive(engine, sms, program).intent is Intent.OPT_OUT
        # The STOP has committed: whatever the carrier holds for this number now is all
        # it may ever get.
        seen_at_stop[number] = len(sim_messages(module_sim.url, to=number))

    # Three STOPs land, whatever the machine's speed, between the senders' claims and their
    # sends: holding the run's advisory lock exclusively (as a cancel does) lets the batches
    # in flight finish and holds every later batch before it re-checks consent.
    with engine.begin() as conn:
        lock_run(conn, run.id, exclusive=True)
        assert (
            conn.execute(select(run_table.c.status).where(run_table.c.id == run.id)).scalar_one()
            == "sending"
        )
        held = (
            conn.execute(
                select(Subscriber.phone)
                .join(delivery_table, delivery_table.c.subscriber_id == Subscriber.id)
                .where(
                    delivery_table.c.run_id == run.id,
                    delivery_table.c.status.in_(("pending", "sending")),
                )
                .order_by(Subscriber.id.desc())
                .limit(3)
            )
            .scalars()
            .all()
        )
        assert len(held) == 3
        for number in held:
            stop(number)
    assert [seen_at_stop[number] for number in held] == [0, 0, 0]
    # Three more race the senders as they go on.
    for number in (phone(100), phone(140), phone(180)):
        stop(number)
        time.sleep(0.2)
    wait_for(lambda: closed(engine, run.id), timeout=60, what="the run to close")
    for number, seen in seen_at_stop.items():
        assert len(sim_messages(module_sim.url, to=number)) == seen, number
    with engine.connect() as conn:
        opted_out = set(conn.execute(
            select(Subscriber.phone)
            .join(delivery_table, delivery_table.c.subscriber_id == Subscriber.id)
            .where(delivery_table.c.run_id == run.id, delivery_table.c.status == "skipped")
            .where(delivery_table.c.reason == "opted_out")
        ).scalars())  # fmt: skip
    assert opted_out == {number for number, seen in seen_at_stop.items() if seen == 0}
    assert delivery_counts(engine, run.id) == {
        ("sent", None): 300 - len(opted_out), ("skipped", "opted_out"): len(opted_out),
    }  # fmt: skip
    assert sum(texts_per_number(module_sim.url).values()) == 300 - len(opted_out)


def test_no_send_starts_after_cancel_commits(engine, queue, workers, module_sim):
    add_subscribers(engine, 300)
    broadcast_id, run = schedule_broadcast(engine)
    workers(SENDER_MPS="60")
    enqueue_start(queue, run)
    wait_for(lambda: count(engine, run.id, "sent") >= 30, timeout=30, what="30 sent")
    with session_scope(engine) as session:
        result = svc.cancel_broadcast(session=session, broadcast_id=broadcast_id)
    at_cancel = len(sim_messages(module_sim.url))
    assert result.runs == (run.id,) and 0 < at_cancel < 300
    wait_for(lambda: closed(engine, run.id), timeout=30, what="the run to close")
    time.sleep(1.0)
    assert len(sim_messages(module_sim.url)) == at_cancel
    counts = delivery_counts(engine, run.id)
    assert counts == {("sent", None): at_cancel, ("skipped", "cancelled"): 300 - at_cancel}
    assert run_row(engine, run.id).status == "cancelled"


# -- checks at send time ---------------------------------------------------------------------


def test_quiet_hours_defer_until_a_job_at_the_allowed_time(engine, queue, redis_connection, workers,
                                                           module_sim):  # fmt: skip
    # 2 a.m. rather than 3: it is still night (and 08:00 over 4 h away) if the hour turns.
    night, day = zone_at_local_hour(2), zone_at_local_hour(13)
    asleep = add_subscribers(engine, 3, timezone=night)
    add_subscribers(engine, 3, start=10, timezone=day)
    _, run = schedule_broadcast(engine)
    workers(QUIET_HOURS="08:00-21:00", BROADCAST_SWEEP_SECONDS="600")  # no sweeper help
    enqueue_start(queue, run)
    wait_for(lambda: count(engine, run.id, "sent") == 3 and count(engine, run.id, "deferred") == 3,
             timeout=30, what="3 sent, 3 deferred")  # fmt: skip
    with engine.connect() as conn:
        not_before = conn.execute(
            select(func.min(delivery_table.c.not_before)).where(delivery_table.c.run_id == run.id)
        ).scalar_one()
    started = run_row(engine, run.id).started_at
    assert not_before == next_allowed_time(not_before - timedelta(minutes=1), phone(0),
                                           window="08:00-21:00", stored_zone=night)  # fmt: skip
    assert not_before > started + timedelta(hours=4)  # tomorrow morning, their time
    registry = ScheduledJobRegistry(queue=queue)
    wake_id = f"bwake-{run.id}-{not_before:%Y%m%dT%H%M%S}Z"
    wait_for(lambda: wake_id in registry.get_job_ids(), timeout=10, what="the wake-up job")
    assert registry.get_scheduled_time(wake_id) == not_before.replace(microsecond=0)
    assert set(texts_per_number(module_sim.url)) == {phone(10), phone(11), phone(12)}

    # Morning comes for them: their clock is now the daytime one, and the scheduler's
    # clock reaches the wake-up job.
    with engine.begin() as conn:
        conn.execute(update(Subscriber.__table__).where(Subscriber.id.in_(asleep))
                     .values(timezone=day))  # fmt: skip
        conn.execute(update(delivery_table).where(delivery_table.c.run_id == run.id)
                     .where(delivery_table.c.status == "deferred")
                     .values(not_before=utcnow()))  # fmt: skip
    redis_connection.zadd(registry.key, {wake_id: time.time()})
    wait_for(lambda: closed(engine, run.id), timeout=30, what="the run to close")
    assert_exactly_one_each(module_sim.url, [phone(i) for i in (0, 1, 2, 10, 11, 12)])


def test_frequency_cap_skips_numbers_at_the_limit(engine, queue, workers, module_sim):
    add_subscribers(engine, 4)
    workers(PROGRAM_MAX_MESSAGES_PER_30_DAYS="1")
    _, first = schedule_broadcast(engine, body="First alert")
    enqueue_start(queue, first)
    wait_for(lambda: closed(engine, first.id), timeout=30, what="the first run to close")
    add_subscribers(engine, 2, start=10)
    _, second = schedule_broadcast(engine, body="Second alert")
    enqueue_start(queue, second)
    wait_for(lambda: closed(engine, second.id), timeout=30, what="the second run to close")
    assert delivery_counts(engine, second.id) == {
        ("skipped", "frequency_cap"): 4, ("sent", None): 2,
    }  # fmt: skip
    assert_exactly_one_each(module_sim.url, [phone(i) for i in (0, 1, 2, 3, 10, 11)])


# -- recurrence ------------------------------------------------------------------------------


def test_recurring_broadcast_fires_on_schedule_and_never_twice(engine, queue, redis_connection,
                                                               workers, module_sim):  # fmt: skip
    add_subscribers(engine, 3)
    first = (utcnow() + timedelta(seconds=3)).replace(microsecond=0)
    broadcast_id, run = schedule_broadcast(engine, body="Daily check-in", send_at=first,
                                 recurrence="daily")  # fmt: skip
    enqueue_start(queue, run)  # at ``first``, by RQ's scheduler
    workers()
    registry = ScheduledJobRegistry(queue=queue)
    wait_for(lambda: closed(engine, run.id), timeout=30, what="the first run")
    assert run_row(engine, run.id).started_at >= first
    runs = runs_of(engine, broadcast_id)
    assert [(r.occurrence_at, r.status) for r in runs] == [
        (first, "sent"), (first + timedelta(days=1), "scheduled"),
    ]  # fmt: skip
    second_job = occurrence_job_id(broadcast_id, first + timedelta(days=1))
    assert registry.get_scheduled_time(second_job) == first + timedelta(days=1)

    redis_connection.zadd(registry.key, {second_job: time.time()})  # a day passes, for RQ
    wait_for(lambda: closed(engine, runs[1].id), timeout=30, what="the second run")
    duplicates = [  # the same occurrences delivered again
        queue.enqueue(start_run, runs[1].id),
        queue.enqueue(start_run, runs[0].id),
    ]
    third_job = occurrence_job_id(broadcast_id, first + timedelta(days=2))
    wait_for(lambda: third_job in registry.get_job_ids(), timeout=10, what="the third job")
    wait_for(lambda: all(job.get_status(refresh=True) == "finished" for job in duplicates),
             timeout=30, what="the duplicates to run (and do nothing)")  # fmt: skip
    runs = runs_of(engine, broadcast_id)
    assert [r.status for r in runs] == ["sent", "sent", "scheduled"]
    per_number = texts_per_number(module_sim.url)
    assert per_number == {phone(0): 2, phone(1): 2, phone(2): 2}
    with session_scope(engine) as session:
        assert svc.get_broadcast(session, broadcast_id).status == "scheduled"
