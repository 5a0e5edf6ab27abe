"""The broadcast sweeper, and an RQ worker that runs it.

The database is the source of truth; Redis only holds the schedule. When Redis loses it
(a restart without persistence, a flush) or a worker dies with a job, :func:`sweep` puts
back what is missing:

* a ``scheduled`` run whose start job is not waiting or running → enqueued again (now if
  due, else at its time);
* a run with deliveries claimable now (pending, deferred and due, or an attempt older
  than the lease) and no sender alive or waiting → senders enqueued;
* a run whose open deliveries all wait for later → a wake-up job at the earliest time;
* a run with nothing open left → closed;
* a single text (:mod:`sms_service.carrier.single_send`) still open after the lease whose
  send job Redis does not hold (never enqueued, or lost) → its job enqueued again.

Start workers with ``rq worker --with-scheduler -w workers.broadcast_worker.BroadcastWorker
broadcasts default`` (each sweeps between jobs, at start-up and every
``BROADCAST_SWEEP_SECONDS``, default 30; one sweep at a time across workers), or call
:func:`start_worker`. ``sms-service broadcast sweep`` runs one sweep by hand.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis import Redis
from rq import Queue, SimpleWorker, Worker
from rq.exceptions import NoSuchJobError, StopRequested
from rq.job import Job, JobStatus
from rq.timeouts import TimerDeathPenalty
from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Engine

from sms_service import log_masking
from sms_service.broadcasts.recovery import wake_time
from sms_service.broadcasts.runs import OPEN_DELIVERY, finish_run
from sms_service.carrier.single_send import enqueue_send_job, send_job_id
from sms_service.db import make_engine, session_scope
from sms_service.domain.carrier_status import MessageStatus
from sms_service.models import (
    BroadcastDelivery,
    BroadcastRun,
    DeliveryStatus,
    OutboundMessage,
    RunStatus,
    utcnow,
)
from workers import QUEUE_BROADCASTS, QUEUE_DEFAULT, QUEUES
from workers.broadcast import (
    alive_key,
    enqueue_senders,
    enqueue_start,
    enqueue_wake,
    lanes_key,
    start_key,
    tuning,
)
from workers.consent_seal import Sealing
from workers.job_ids import occurrence_job_id
from workers.lifetime import ChildrenDieWithWorker
from workers.masked_failures import MaskedFailures

log = logging.getLogger(__name__)

SWEEP_LOCK = "sms:bcast:sweep-lock"
STARTED_GRACE = timedelta(seconds=120)  # a started job with no heartbeat for this long is dead
WAITING = (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED)

delivery_table = BroadcastDelivery.__table__
run_table = BroadcastRun.__table__
outbound_table = OutboundMessage.__table__


@dataclass
class SweepReport:
    """What one sweep put back."""

    starts: int = 0
    senders: int = 0
    wakes: int = 0
    closed: int = 0
    single_sends: int = 0

    def __str__(self) -> str:
        return (
            f"sweep: {self.starts} starts, {self.senders} senders, {self.wakes} wake-ups, "
            f"{self.closed} runs closed, {self.single_sends} single sends"
        )


def job_alive(connection: Redis, job_id: str | bytes | None, now: datetime) -> bool:
    """True if the job is waiting, or running with a recent heartbeat."""
    if not job_id:
        return False
    job_id = job_id.decode() if isinstance(job_id, bytes) else job_id
    try:
        job = Job.fetch(job_id, connection=connection)
    except NoSuchJobError:
        return False
    status = job.get_status(refresh=False)
    if status in WAITING:
        return True
    if status == JobStatus.STARTED:
        beat = job.last_heartbeat or job.started_at
        return beat is not None and now - beat < STARTED_GRACE
    return False


def sweep(
    *,
    engine: Engine,
    queue: Queue,
    now: datetime | None = None,
    lanes: int | None = None,
    lease: timedelta | None = None,
) -> SweepReport:
    """Put back the jobs Redis lost (see the module docstring); idempotent."""
    now = now or utcnow()
    lease = lease or tuning().lease
    report = SweepReport()
    redis = queue.connection
    with engine.connect() as conn:
        scheduled = conn.execute(
            select(run_table.c.id, run_table.c.broadcast_id, run_table.c.occurrence_at).where(
                run_table.c.status == RunStatus.SCHEDULED
            )
        ).all()
        open_runs = conn.execute(
            select(run_table.c.id, run_table.c.status).where(
                run_table.c.status.in_((RunStatus.SENDING, RunStatus.CANCELLED)),
                run_table.c.finished_at.is_(None),
            )
        ).all()
    for run in scheduled:
        if job_alive(redis, redis.get(start_key(run.id)), now):
            continue
        default_id = occurrence_job_id(run.broadcast_id, run.occurrence_at)
        job_id = default_id if not redis.exists(Job.key_for(default_id)) else None
        job_id = job_id or f"{default_id}-s{uuid.uuid4().hex[:8]}"
        if enqueue_start(queue, run, job_id=job_id) is not None:
            report.starts += 1
    for run in open_runs:
        _sweep_open_run(engine, queue, run.id, run.status, now, lease, lanes, report)
    _sweep_single_sends(engine, Queue(QUEUE_DEFAULT, connection=redis), now, lease, report)
    if report.starts or report.senders or report.wakes or report.closed or report.single_sends:
        log.info("%s", report)
    return report


def _sweep_open_run(engine, queue, run_id, status, now, lease, lanes, report) -> None:
    redis = queue.connection
    with engine.connect() as conn:
        state = conn.execute(
            select(
                func.count(),
                func.count().filter(delivery_table.c.status == DeliveryStatus.PENDING),
                func.count().filter(
                    delivery_table.c.status == DeliveryStatus.DEFERRED,
                    delivery_table.c.not_before <= now,
                ),
                func.count().filter(
                    delivery_table.c.status == DeliveryStatus.SENDING,
                    delivery_table.c.attempt_started_at < now - lease,
                ),
                func.min(delivery_table.c.not_before).filter(
                    delivery_table.c.status == DeliveryStatus.DEFERRED
                ),
                func.min(delivery_table.c.attempt_started_at).filter(
                    delivery_table.c.status == DeliveryStatus.SENDING
                ),
            ).where(delivery_table.c.run_id == run_id, delivery_table.c.status.in_(OPEN_DELIVERY))
        ).one()
    total, pending, due, stale, deferred_at, started_at = state
    if not total:
        with session_scope(engine) as session:
            if finish_run(session=session, run_id=run_id, now=now):
                report.closed += 1
        return
    if pending or due or stale:
        if redis.exists(alive_key(run_id)) or _lane_waiting(redis, run_id):
            return
        count = 1 if status == RunStatus.CANCELLED else lanes
        enqueue_senders(queue, run_id, lanes=count)
        report.senders += count
        return
    wake = wake_time(deferred_at, started_at, lease)
    if wake is not None and enqueue_wake(queue, run_id, wake) is not None:
        report.wakes += 1


def _sweep_single_sends(engine: Engine, queue: Queue, now: datetime, lease: timedelta,
                        report: SweepReport) -> None:  # fmt: skip
    """Enqueue the send job of every single text left open past the lease without one."""
    open_ = or_(
        outbound_table.c.status.in_((MessageStatus.PENDING, MessageStatus.UNKNOWN)),
        and_(
            outbound_table.c.status == MessageStatus.SENDING,
            outbound_table.c.attempted_at < now - lease,
        ),
    )
    with engine.connect() as conn:
        query = select(outbound_table.c.id).where(open_, outbound_table.c.created_at < now - lease)
        ids = conn.execute(query.order_by(outbound_table.c.id).limit(5000)).scalars().all()
    for message_id in ids:
        # A job that exists (waiting, retrying, or failed for good and kept for people to
        # see) is left alone; only one Redis never had or has lost is enqueued again.
        if queue.connection.exists(Job.key_for(send_job_id(message_id))):
            continue
        if enqueue_send_job(queue, message_id) is not None:
            report.single_sends += 1


def _lane_waiting(redis: Redis, run_id: int) -> bool:
    """True if a sender job of the run is waiting to start; forgets the others.

    A running sender is known by the run's alive key, which it refreshes: a job that
    Redis still calls started while the key has expired died with its worker.
    """
    key = lanes_key(run_id)
    waiting = False
    for job_id in redis.smembers(key):
        try:
            status = Job.fetch(job_id.decode(), connection=redis).get_status(refresh=False)
        except NoSuchJobError:
            status = None
        if status in WAITING:
            waiting = True
        elif status != JobStatus.STARTED:
            redis.srem(key, job_id)
    return waiting


class _Sweeping:
    """Mixin for RQ workers: sweep between jobs, at start and every ``sweep_interval``.

    The sweep runs in the worker's main loop, through RQ's maintenance hook, never in a
    thread: a forking worker must not fork while another thread holds a lock (an import
    in progress, a connection pool), or the work horse inherits it held and hangs. An idle
    worker wakes from its blocking dequeue every ``sweep_interval`` seconds to sweep; only
    one worker sweeps per interval (a Redis lock).
    """

    sweep_interval: float
    _next_sweep: float = 0.0
    _sweep_engine: Engine | None = None

    def __init__(self, *args, sweep_interval: float | None = None, **kwargs) -> None:
        log_masking.install()  # the worker, and every work horse it forks, masks numbers
        # ``rq worker -w ...`` passes no interval: BROADCAST_SWEEP_SECONDS, read at start.
        self.sweep_interval = sweep_interval or tuning().sweep_seconds
        super().__init__(*args, **kwargs)

    @property
    def dequeue_timeout(self) -> int:  # RQ's API
        return max(1, min(super().dequeue_timeout, int(self.sweep_interval)))

    @property
    def should_run_maintenance_tasks(self) -> bool:  # RQ's API
        return super().should_run_maintenance_tasks or self._sweep_due()

    def run_maintenance_tasks(self) -> None:  # RQ's API
        if super().should_run_maintenance_tasks:
            super().run_maintenance_tasks()
        if self._sweep_due():
            self._next_sweep = time.monotonic() + self.sweep_interval
            self._sweep()

    def _sweep_due(self) -> bool:
        return QUEUE_BROADCASTS in self.queue_names() and time.monotonic() >= self._next_sweep

    def _sweep(self) -> None:
        lock_ms = max(int(self.sweep_interval * 900), 100)
        try:
            if not self.connection.set(SWEEP_LOCK, self.name, nx=True, px=lock_ms):
                return
            if self._sweep_engine is None:
                from workers import context

                self._sweep_engine = make_engine(context.settings().database_url)
            queue = Queue(QUEUE_BROADCASTS, connection=self.connection)
            sweep(engine=self._sweep_engine, queue=queue)
        except StopRequested:
            raise  # SIGTERM arrived mid-sweep: RQ's shutdown, not a failed sweep
        except Exception:  # maintenance, not a job: log, try next time
            log.exception("broadcast sweep failed")


class BroadcastWorker(MaskedFailures, Sealing, _Sweeping, ChildrenDieWithWorker, Worker):
    """RQ's forking worker, plus the broadcast sweeper and the consent log sealer; its
    scheduler and work horses end with it, and it becomes the scheduler when the one before
    it is gone (:mod:`workers.lifetime`)."""


class SimpleBroadcastWorker(MaskedFailures, Sealing, _Sweeping, SimpleWorker):
    """RQ's in-process worker (no fork: fakeredis, debugging), plus the sweeper and sealer.

    It may run in a thread other than the main one (``sms-service dev``): it then leaves
    signal handlers alone, times jobs out with a timer instead of SIGALRM, and stops when
    ``stop_event`` is set (checked at least every second).
    """

    stop_event: threading.Event | None = None

    def __init__(self, *args, stop_event: threading.Event | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.stop_event = stop_event
        if threading.current_thread() is not threading.main_thread():
            self.death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is threading.main_thread():
            super()._install_signal_handlers()

    @property
    def dequeue_timeout(self) -> int:  # RQ's API
        return 1 if self.stop_event is not None else super().dequeue_timeout

    @property
    def should_run_maintenance_tasks(self) -> bool:  # RQ's API
        stopping = self.stop_event is not None and self.stop_event.is_set()
        return stopping or super().should_run_maintenance_tasks

    def run_maintenance_tasks(self) -> None:  # RQ's API
        if self.stop_event is not None and self.stop_event.is_set():
            # RQ checks its stop flag only between jobs; an idle worker waits in its
            # dequeue loop, which calls maintenance every second and ends on this.
            raise StopRequested()
        super().run_maintenance_tasks()


def start_worker(
    *,
    connection: Redis,
    queues: Sequence[str] = QUEUES,
    burst: bool = False,
    with_scheduler: bool = True,
    fork: bool = True,
    name: str | None = None,
    stop_event: threading.Event | None = None,
    sweep_interval: float | None = None,
) -> bool:
    """Run a worker for ``queues`` (default: broadcasts, then default) until stopped.

    ``fork=True`` (production): RQ's forking worker, its scheduler in a forked process;
    call it from a process's main thread. ``fork=False`` (``sms-service dev``, fakeredis):
    jobs run in this process, the scheduler in a thread, and it may run in any thread;
    set ``stop_event`` to end it. ``sweep_interval``: seconds between sweeps (default
    ``BROADCAST_SWEEP_SECONDS``). Returns whether any job was run.
    """
    queue_objects = [Queue(q, connection=connection) for q in queues]
    if fork:
        worker = BroadcastWorker(
            queue_objects, connection=connection, name=name, sweep_interval=sweep_interval
        )
        return worker.work(burst=burst, with_scheduler=with_scheduler)
    worker = SimpleBroadcastWorker(
        queue_objects, connection=connection, name=name, stop_event=stop_event,
        sweep_interval=sweep_interval,
    )  # fmt: skip
    if not with_scheduler:
        return worker.work(burst=burst, with_scheduler=False)
    stop = threading.Event()
    thread = threading.Thread(
        target=_schedule_in_thread,
        args=(queue_objects, connection, stop),
        name="rq-scheduler",
        daemon=True,
    )
    thread.start()
    try:
        return worker.work(burst=burst, with_scheduler=False)
    finally:
        stop.set()


def _schedule_in_thread(queues: list[Queue], connection: Redis, stop: threading.Event) -> None:
    """RQ's scheduler loop, in a thread: move due scheduled jobs to their queues."""
    from rq.scheduler import RQScheduler

    scheduler = RQScheduler(queues, connection=connection)
    scheduler._connection = connection  # share the caller's client (fakeredis needs it)
    while not stop.is_set():
        try:
            if scheduler.should_reacquire_locks:
                scheduler.acquire_locks()
            scheduler.heartbeat()
            scheduler.enqueue_scheduled_jobs()
        except Exception:  # a background loop: log and try next second
            log.exception("scheduler tick failed")
        stop.wait(1.0)
