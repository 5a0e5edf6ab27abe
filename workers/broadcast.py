"""RQ jobs for broadcasts, and how they are enqueued.

Every broadcast job goes to the ``broadcasts`` queue (:data:`workers.QUEUE_BROADCASTS`):

* :func:`start_run` ``(run_id)`` — at the occurrence time (``enqueue_at``, aware UTC; job id
  ``bcast-<broadcast>-<UTC time>Z`` from :func:`~workers.job_ids.occurrence_job_id`).
  Plans the recipients, inserts the next occurrence's run (chaining a recurring
  broadcast), then enqueues the next start and the senders.
* :func:`send_run` ``(run_id)`` — a sender ("lane"): settles lost attempts, claims and sends
  batches until nothing is claimable or ``BROADCAST_LANE_SECONDS`` pass, then hands over to a
  fresh job. Several run side by side; deferred rows get a ``send_run`` enqueued at the time
  they are due (job id ``bwake-<run>-<UTC time>Z``).

The sweeper that puts back whatever Redis lost runs inside the worker process
(:func:`workers.broadcast_worker.sweep`), not as a job.

Jobs take ids, load their rows, return early when there is nothing to do and let
exceptions propagate, so ``Retry`` applies. The database decides what is sent; a job
delivered twice finds its work done. No Flask here.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from redis import Redis
from rq import Queue, Retry, get_current_job
from rq.exceptions import DuplicateJobError
from rq.job import Job

from sms_service.broadcasts import begin_run
from sms_service.broadcasts.clients import ClientPool
from sms_service.broadcasts.sending import RunSender
from sms_service.broadcasts.tuning import Tuning
from sms_service.carrier.throttle import Throttle
from sms_service.db import session_scope
from sms_service.models import BroadcastRun, utcnow
from workers import QUEUE_BROADCASTS, context
from workers.job_ids import occurrence_job_id

log = logging.getLogger(__name__)

KEY_PREFIX = "sms:bcast"
START_RETRY = Retry(max=3, interval=[10, 60, 300])
SEND_RETRY = Retry(max=5, interval=[5, 30, 60, 300, 900])


def tuning() -> Tuning:
    """The ``BROADCAST_*`` settings of this process (read once, see :mod:`workers.context`)."""
    return Tuning.from_settings(context.settings())


def alive_key(run_id: int) -> str:
    """Redis key that exists while a sender works on the run."""
    return f"{KEY_PREFIX}:alive:{run_id}"


def lanes_key(run_id: int) -> str:
    """Redis set of the sender job ids enqueued for the run."""
    return f"{KEY_PREFIX}:lanes:{run_id}"


def start_key(run_id: int) -> str:
    """Redis key holding the id of the run's latest start job."""
    return f"{KEY_PREFIX}:start:{run_id}"


# -- the jobs --------------------------------------------------------------------------------


def start_run(run_id: int) -> str:
    """Start one occurrence: plan it, chain the next one, enqueue its senders."""
    with session_scope(context.engine()) as session:
        started = begin_run(session=session, run_id=run_id)
    if started is None:
        return "nothing to do"
    queue = _queue()
    if started.next_run is not None:
        enqueue_start(queue, started.next_run)
    if not started.finished:
        enqueue_senders(queue, run_id)
    return f"run {run_id}: {started.planned} recipients"


def send_run(run_id: int) -> str:
    """One sender for a run (see the module docstring)."""
    settings = context.settings()
    tune = tuning()
    queue = _queue()
    throttle = Throttle.for_settings(settings, connection=queue.connection)

    def client():
        from sms_service.carrier.client import make_twilio_client

        return make_twilio_client(settings, timeout=tune.client_timeout)

    pool = ClientPool(client, tune.concurrency)
    try:
        with heartbeat(queue.connection, run_id, ttl=tune.alive_ttl):
            report = RunSender(
                engine=context.engine(),
                settings=settings,
                pool=pool,
                throttle=throttle,
                tuning=tune,
            ).send_run(run_id, max_seconds=tune.lane_seconds)
    finally:
        pool.close()
    if report.out_of_time:
        enqueue_senders(queue, run_id, lanes=1)
    wakes = set(report.wake_times)
    if report.wake_at is not None:
        wakes.add(report.wake_at)
    for when in wakes:
        enqueue_wake(queue, run_id, when)
    return (
        f"run {run_id}: sent {report.sent}, skipped {report.skipped}, deferred "
        f"{report.deferred}, failed {report.failed}, unknown {report.unknown}, recovered "
        f"{report.recovered}{', finished' if report.finished else ''}"
    )


# -- enqueueing ------------------------------------------------------------------------------


def _queue() -> Queue:
    """The queue this job came from, or the broadcasts queue on ``REDIS_URL``."""
    job = get_current_job()
    if job is not None:
        return Queue(job.origin, connection=job.connection)
    return Queue(QUEUE_BROADCASTS, connection=Redis.from_url(context.settings().redis_url))


def _aware_utc(when: datetime) -> datetime:
    # RQ reads a naive datetime as the server's local time: always hand it aware UTC.
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("job times must be timezone-aware")
    return when.astimezone(UTC)


def enqueue_start(queue: Queue, run: BroadcastRun, *, job_id: str | None = None) -> Job | None:
    """Enqueue :func:`start_run` at the run's occurrence (now if it is due).

    The default job id is the occurrence's own; enqueueing it again while it is waiting is
    refused by RQ (``unique``) and ignored here. Returns the job, or None if it existed.
    """
    when = _aware_utc(run.occurrence_at)
    job_id = job_id or occurrence_job_id(run.broadcast_id, when)
    options = dict(
        job_id=job_id,
        unique=True,
        retry=START_RETRY,
        job_timeout=900,
        description=f"broadcast {run.broadcast_id} run {run.id}: start",
    )
    try:
        if when <= utcnow():
            job = queue.enqueue(start_run, run.id, **options)
        else:
            job = queue.enqueue_at(when, start_run, run.id, **options)
    except DuplicateJobError:
        return None
    ttl = int(max((when - utcnow()).total_seconds(), 0)) + 86_400
    queue.connection.set(start_key(run.id), job_id, ex=ttl)
    return job


def enqueue_senders(queue: Queue, run_id: int, *, lanes: int | None = None) -> list[Job]:
    """Enqueue ``lanes`` (default ``BROADCAST_LANES``) :func:`send_run` jobs for the run now;
    ids are remembered so the sweeper can tell whether any is still waiting."""
    jobs = []
    tune = tuning()
    timeout = int(tune.lane_seconds + tune.lease.total_seconds() + 300)
    for _ in range(max(1, tune.lanes if lanes is None else lanes)):
        job_id = f"bsend-{run_id}-{uuid.uuid4().hex[:12]}"
        jobs.append(
            queue.enqueue(
                send_run,
                run_id,
                job_id=job_id,
                retry=SEND_RETRY,
                job_timeout=timeout,
                description=f"broadcast run {run_id}: send",
            )
        )
    key = lanes_key(run_id)
    queue.connection.sadd(key, *(job.id for job in jobs))
    queue.connection.expire(key, 7 * 86_400)
    return jobs


def enqueue_wake(queue: Queue, run_id: int, when: datetime) -> Job | None:
    """Enqueue a :func:`send_run` at ``when`` (rounded up to the second) for rows deferred
    until then; one job per run and second, so a thousand deferrals make one job."""
    when = _aware_utc(when)
    if when.microsecond:
        when = when.replace(microsecond=0) + timedelta(seconds=1)
    job_id = occurrence_job_id(run_id, when, prefix="bwake")
    try:
        return queue.enqueue_at(
            when,
            send_run,
            run_id,
            job_id=job_id,
            unique=True,
            retry=SEND_RETRY,
            job_timeout=int(tuning().lane_seconds + 600),
            description=f"broadcast run {run_id}: send what was deferred",
        )
    except DuplicateJobError:
        return None


@contextmanager
def heartbeat(connection: Redis, run_id: int, *, ttl: timedelta) -> Iterator[None]:
    """Keep the run's alive key while the block runs (a thread refreshes it every third of
    ``ttl``, ``BROADCAST_ALIVE_SECONDS``)."""
    key = alive_key(run_id)
    ttl_ms = int(ttl.total_seconds() * 1000)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(ttl.total_seconds() / 3):
            try:
                connection.set(key, os.getpid(), px=ttl_ms)
            except Exception:  # a lost beat only makes the sweeper add a lane
                log.warning("could not refresh %s", key, exc_info=True)

    connection.set(key, os.getpid(), px=ttl_ms)
    thread = threading.Thread(target=beat, name=f"bcast-heartbeat-{run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


__all__ = [
    "QUEUE_BROADCASTS",
    "enqueue_senders",
    "enqueue_start",
    "enqueue_wake",
    "send_run",
    "start_run",
]
