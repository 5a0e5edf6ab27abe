"""A forking worker's children end with it, and a replacement takes over scheduling.

RQ's forking worker has two kinds of children: the scheduler (one process per worker
holding the queues' scheduler lock) and a work horse per job, in its own process group.
When the worker is killed outright (SIGKILL, the OOM killer), neither is told: the
scheduler went on running with no parent, renewing the lock, so a replacement worker never
became the scheduler; the horse finished its job unwatched. Here:

* each child asks the kernel for SIGTERM when its parent dies (Linux ``PR_SET_PDEATHSIG``)
  and also checks its parent every tick, where that call does not exist; the scheduler
  then stops at its next tick (within ``SCHEDULER_TICK`` s) and releases its lock; a horse
  ends at once (a delivery it had claimed is reconciled with the carrier after the lease,
  never sent twice);
* a worker whose scheduler is not running retries the lock every
  :data:`SCHEDULER_RETRY_SECONDS` while idle (RQ retries every 10 minutes). A
  replacement worker thus schedules within ``SCHEDULER_TICK + SCHEDULER_RETRY_SECONDS``
  (about 11 s) of the old worker's death, or at the end of the job it is running; if the
  old scheduler could not release its lock, within the lock's time to live (61 s) more;
* a SIGTERM stops an idle worker even when it lands in the middle of maintenance.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import time

from rq.exceptions import StopRequested
from rq.scheduler import RQScheduler

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
SCHEDULER_TICK = 1.0  # RQ's scheduler interval, seconds
SCHEDULER_RETRY_SECONDS = 10.0


def die_with_parent(parent_pid: int, sig: int = signal.SIGTERM) -> bool:
    """Have the kernel send ``sig`` to this process when its parent ends (Linux); True if
    it will. If the parent already ended before the request, send it now."""
    armed = False
    try:
        armed = ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):  # not Linux: the tick check below still ends it
        armed = False
    if os.getppid() != parent_pid:  # the parent died between fork and prctl
        os.kill(os.getpid(), sig)
    return armed


class ParentBoundScheduler(RQScheduler):
    """RQ's scheduler that stops (releasing its lock) as soon as its worker is gone."""

    _parent_pid: int | None = None

    def start(self):
        self._parent_pid = os.getpid()  # the worker, about to fork the scheduler
        return super().start()

    def work(self) -> None:  # RQ's API; runs in the forked scheduler process
        if self._parent_pid is not None:
            die_with_parent(self._parent_pid)
        super().work()

    def enqueue_scheduled_jobs(self) -> None:  # RQ's API, called every tick
        if self._parent_pid is not None and os.getppid() != self._parent_pid:
            log.warning("scheduler: its worker is gone; stopping and releasing the lock")
            self.request_stop()
            return
        super().enqueue_scheduled_jobs()


class ChildrenDieWithWorker:
    """Mixin for RQ's forking :class:`rq.Worker`: scheduler and horses end with it, and a
    worker without a running scheduler retries the lock every ``SCHEDULER_RETRY_SECONDS``."""

    scheduler_retry_seconds: float = SCHEDULER_RETRY_SECONDS
    _next_scheduler_try: float = 0.0
    _with_scheduler: bool = False
    _worker_pid: int | None = None

    def work(self, *args, **kwargs) -> bool:  # RQ's API
        self._worker_pid = os.getpid()  # what every horse forked from here watches
        return super().work(*args, **kwargs)

    def _start_scheduler(self, burst=False, logging_level="INFO", date_format=None,
                         log_format=None) -> None:  # fmt: skip
        # RQ's own, with the scheduler class above.
        from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT

        self._with_scheduler = True
        self.scheduler = ParentBoundScheduler(
            self.queues,
            connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            date_format=date_format or DEFAULT_LOGGING_DATE_FORMAT,
            log_format=log_format or DEFAULT_LOGGING_FORMAT,
            serializer=self.serializer,
        )
        self.scheduler.acquire_locks()
        if not self.scheduler.acquired_locks:
            return
        if burst:
            try:
                self.scheduler.register_birth()
                self.scheduler.enqueue_scheduled_jobs()
            finally:
                self.scheduler.release_locks()
                self.scheduler.register_death()
        else:
            self.scheduler.start()

    def setup_work_horse_signals(self) -> None:  # RQ's API, in the new horse
        super().setup_work_horse_signals()
        die_with_parent(self._worker_pid or os.getppid())

    @property
    def dequeue_timeout(self) -> int:  # RQ's API
        if not self._with_scheduler:
            return super().dequeue_timeout
        return max(1, min(super().dequeue_timeout, int(self.scheduler_retry_seconds)))

    def _shutdown(self) -> None:
        # RQ raises StopRequested from the signal handler when idle, wherever the main
        # thread is: inside a sweep or a registry clean-up, a library's ``except`` can
        # swallow it, and the worker ran on. The flag makes the next maintenance call stop.
        self._stop_requested = True
        super()._shutdown()

    @property
    def should_run_maintenance_tasks(self) -> bool:  # RQ's API
        return (
            self._stop_requested
            or super().should_run_maintenance_tasks
            or self.scheduler_retry_due()
        )

    def run_maintenance_tasks(self) -> None:  # RQ's API
        if self._stop_requested:
            raise StopRequested()
        if super().should_run_maintenance_tasks:
            super().run_maintenance_tasks()
        if self.scheduler_retry_due():
            self.retry_scheduler()

    def scheduler_retry_due(self) -> bool:
        """True when this worker should try to become the scheduler now."""
        if not self._with_scheduler or self.scheduler is None:
            return False
        process = self.scheduler._process
        if process is not None and process.is_alive():
            return False
        return time.monotonic() >= self._next_scheduler_try

    def retry_scheduler(self) -> None:
        """Take the scheduler lock if it is free, and start the scheduler if taken."""
        self._next_scheduler_try = time.monotonic() + self.scheduler_retry_seconds
        try:
            self.scheduler.acquire_locks(auto_start=True)
        except StopRequested:
            raise  # SIGTERM arrived meanwhile: RQ's shutdown
        except Exception:  # maintenance: log and try next time
            log.exception("taking the scheduler lock failed")
