"""gunicorn's ``gthread`` worker, closing its own listening socket when it begins to stop.

With ``WEB_REUSE_PORT=on``, ``gunicorn.conf.py`` turns on ``reuse_port``: each worker then
binds its own socket on the port (``SO_REUSEPORT``) and the kernel spreads new connections
over the workers' sockets.
On one shared socket, the connections of a burst go to whichever worker happens to accept
first and stay there (keep-alive): under wrk's 32 connections the two workers were seen
holding 1 and 31, 3 and 29, 6 and 26, so one process, bound by its GIL, answered nearly
everything while the other idled, and the texts it held waited twice as long
(bench/README.md, inbound_rate).

With its own socket, a worker that stops gracefully (a deploy, a reload, a restart) must
stop the kernel sending it new connections at once: gunicorn's gthread worker only stops
accepting, leaving its socket bound while it finishes its requests (up to
``graceful_timeout``), and connections the kernel queued on that socket meanwhile would
hang, then be reset when it exits, texts Twilio had delivered to nobody. This worker closes
its sockets as soon as it stops accepting, so new connections go to the other workers'
sockets. Connections already queued on a closing socket are reset by the kernel unless the
host sets ``net.ipv4.tcp_migrate_req=1`` (Linux 5.14+), which hands them to a sibling
socket: the README says when a socket per worker is safe.

On the shared socket (the default), the workers take new connections by least connections:
a worker accepts only while it holds no more open connections than the least loaded of
the others. Their counts are in a small table of shared memory (:class:`ConnectionTable`)
that ``gunicorn.conf.py`` makes before the workers fork; each worker writes its count at
every turn of its event loop and reads the others' before it accepts. The one with the
fewest always accepts, so a connection never waits for a worker that may not take it; a
worker whose loop has not turned for :data:`STALE_MS` (stuck, stopped, killed) is left
out, and a stopping worker leaves the table as it stops accepting. A worker held back
looks again every :data:`HELD_BACK_POLL_S` while nothing else wakes it. Before it, a burst's
connections were seen landing 1 and 31, 3 and 29 on the two workers, and the same code
ran at 1,800-2,000 texts/s or, whenever one worker held nearly all of them, about 1,000
(bench/README.md, inbound_rate, session 11).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import time

from gunicorn.workers.gthread import ThreadWorker as _GunicornThreadWorker

# Per slot: the worker's pid (0: free), its open connections, its loop's last turn (ms).
_FIELDS = 3
# A worker in the table turns its loop at least every IDLE_POLL_S (gthread's own: 1 s), so
# one that has not turned for STALE_MS is stuck or gone, and one held back looks again
# every HELD_BACK_POLL_S.
IDLE_POLL_S = 0.25
STALE_MS = 750
HELD_BACK_POLL_S = 0.02


def _now_ms() -> int:
    return time.monotonic_ns() // 1_000_000  # CLOCK_MONOTONIC: one clock for all processes


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ConnectionTable:
    """Each web worker's open connections, in memory shared by the workers: made in
    gunicorn's arbiter before it forks them."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._cells = multiprocessing.RawArray(ctypes.c_longlong, _FIELDS * slots)
        self._lock = multiprocessing.Lock()

    def claim(self, pid: int) -> int | None:
        """A slot for worker ``pid`` (a free one, or one whose process has gone); None
        when every slot is held (that worker then accepts as plain gthread does)."""
        with self._lock:
            for slot in range(self.slots):
                held = self._cells[_FIELDS * slot]
                if held == 0 or held == pid or not _alive(held):
                    self._write(slot, pid, 0)
                    return slot
        return None

    def release(self, pid: int) -> None:
        """Worker ``pid`` no longer takes connections (stopping, or reaped)."""
        with self._lock:
            for slot in range(self.slots):
                if self._cells[_FIELDS * slot] == pid:
                    self._cells[_FIELDS * slot] = 0

    def publish(self, slot: int, connections: int) -> None:
        """The slot's worker holds ``connections`` and its loop is turning."""
        base = _FIELDS * slot
        self._cells[base + 1] = connections
        self._cells[base + 2] = _now_ms()

    def fewest_elsewhere(self, slot: int) -> int | None:
        """The fewest connections any other live worker holds; None when there is none."""
        now, fewest, cells = _now_ms(), None, self._cells
        for other in range(self.slots):
            base = _FIELDS * other
            if other == slot or cells[base] == 0 or now - cells[base + 2] > STALE_MS:
                continue
            count = cells[base + 1]
            if fewest is None or count < fewest:
                fewest = count
        return fewest

    def _write(self, slot: int, pid: int, connections: int) -> None:
        base = _FIELDS * slot
        self._cells[base + 1] = connections
        self._cells[base + 2] = _now_ms()
        self._cells[base] = pid


# Set by gunicorn.conf.py's on_starting (the arbiter, before any worker forks) when the
# workers share one socket; None: every worker accepts as plain gthread does.
TABLE: ConnectionTable | None = None


class ThreadWorker(_GunicornThreadWorker):
    """gthread taking new connections by least connections on a shared socket; with
    ``reuse_port``, the worker's sockets close when it stops accepting for good."""

    slot: int | None = None

    def run(self) -> None:
        # Once the app is loaded (a worker loading it would hold the others back). Least
        # connections only on a shared socket: with a socket each, a connection the kernel
        # queued on this worker's socket has no other worker to take it.
        if TABLE is not None and not self.cfg.reuse_port:
            self.slot = TABLE.claim(os.getpid())
        try:
            super().run()
        finally:
            self._leave_table()

    def notify(self) -> None:
        super().notify()  # at every turn of gthread's loop
        if self.slot is not None:
            TABLE.publish(self.slot, self.nr_conns)

    def has_fewest(self) -> bool:
        """No other live worker holds fewer open connections than this one."""
        if self.slot is None:
            return True
        fewest = TABLE.fewest_elsewhere(self.slot)
        return fewest is None or self.nr_conns <= fewest

    def accept(self, listener) -> None:
        if not self.has_fewest():  # another worker has fewer since this one last looked
            _GunicornThreadWorker.set_accept_enabled(self, False)
            return
        super().accept(listener)
        if self.slot is not None:
            TABLE.publish(self.slot, self.nr_conns)

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        if self.slot is not None and self.alive:
            timeout = min(timeout, IDLE_POLL_S if self._accepting else HELD_BACK_POLL_S)
        super().wait_for_and_dispatch_events(timeout)

    def _leave_table(self) -> None:
        if self.slot is not None:
            TABLE.release(os.getpid())
            self.slot = None

    def set_accept_enabled(self, enabled: bool) -> None:
        # gthread's loop asks again at its next turn while its connection limit allows.
        if enabled and self.alive and not self.has_fewest():
            return
        if not enabled and not self.alive:
            self._leave_table()  # stopping: the others must not wait for this one
        super().set_accept_enabled(enabled)
        # Not accepting while still alive is gthread's connection limit (worker_connections),
        # which lifts again: only a stopping worker gives its sockets up.
        if not enabled and not self.alive and self.cfg.reuse_port:
            for listener in self.sockets:
                listener.close()
