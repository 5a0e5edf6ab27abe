"""gunicorn's ``gthread`` worker: new connections by least load on a shared socket; a socket
of its own closed as soon as it begins to stop.

With ``WEB_REUSE_PORT=on``, ``gunicorn.conf.py`` turns on ``reuse_port``: each worker then
binds its own socket on the port (``SO_REUSEPORT``) and the kernel spreads new connections
over the workers' sockets.

With its own socket, a worker that stops gracefully (a deploy, a reload, a restart) must
stop the kernel sending it new connections at once: gunicorn's gthread worker only stops
accepting, leaving its socket bound while it finishes its requests (up to
``graceful_timeout``), and connections the kernel queued on that socket meanwhile would
hang, then be reset when it exits, texts Twilio had delivered to nobody. This worker closes
its sockets as soon as it stops accepting, so new connections go to the other workers'
sockets. Connections already queued on a closing socket are reset by the kernel unless the
host sets ``net.ipv4.tcp_migrate_req=1`` (Linux 5.14+), which hands them to a sibling
socket: the README says when a socket per worker is safe.

On the shared socket (the default), the workers take new connections by least load: a
worker accepts only while no other live worker has less in hand, counted as requests
being answered or queued for a thread, then open connections. The counts are in a small
table of shared memory (:class:`LoadTable`) that ``gunicorn.conf.py`` makes before the
workers fork; the arbiter gives each new worker a slot of it (no lock: only the arbiter
hands slots out and takes them back), and each worker writes its load at every turn of
its event loop and reads the others' before it accepts. A connection never waits long
for a worker that should take it and does not: one that has waited on the listener for
:data:`OVERDUE_S` is taken by any worker (the least loaded one's loop may be held up: a
request holding the GIL, a long collection, no core free); a worker whose loop has not
turned for :data:`STALE_MS` (stuck, stopped) is left out; a stopping worker leaves the
table as it stops accepting, and the arbiter frees a slot when its worker exits. Plain
gthread gives a burst's connections to whichever worker accepts first, and keep-alive
keeps them there: under wrk's 32 connections the two workers were seen holding 1 and 31,
3 and 29, 6 and 26, so one process, bound by its GIL, answered nearly everything while
the other idled, and the same code ran at 1,800-2,000 texts/s or, whenever that
happened, about 1,000 (bench/README.md, inbound_rate, sessions 9 and 11).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import select
import time

from gunicorn.workers.gthread import ThreadWorker as _GunicornThreadWorker

# The table's first cell bounds the slots ever handed out; then per slot: the worker's pid
# (0: none), its requests in hand, its open connections, its loop's last turn (ms).
_FIELDS = 4
# A worker in the table turns its loop at least every IDLE_POLL_S (gthread's own: 1 s),
# and every HELD_BACK_POLL_S while it is held back, so one that has not turned for STALE_MS
# is stuck or stopped; a connection waiting OVERDUE_S is anyone's.
IDLE_POLL_S = 0.25
HELD_BACK_POLL_S = 0.01
OVERDUE_S = 0.02
STALE_MS = 750
SLOTS = 64  # workers at once, a reload's new ones beside the old; beyond: plain gthread


def _now_ms() -> int:
    return time.monotonic_ns() // 1_000_000  # CLOCK_MONOTONIC: one clock for all processes


class LoadTable:
    """Each web worker's load, in memory shared by the workers: made in gunicorn's arbiter
    before it forks them. The arbiter hands out the slots (:meth:`assign`, :meth:`free`);
    a worker writes only its own."""

    def __init__(self, slots: int = SLOTS) -> None:
        self.slots = slots
        self._cells = multiprocessing.RawArray(ctypes.c_longlong, 1 + _FIELDS * slots)
        self._assigned: set[int] = set()  # the arbiter's own record

    # In the arbiter.

    def assign(self) -> int | None:
        """A free slot for a worker about to fork; None when all are taken."""
        slot = next((i for i in range(self.slots) if i not in self._assigned), None)
        if slot is not None:
            self._assigned.add(slot)
            self._cells[1 + _FIELDS * slot] = 0
            self._cells[0] = max(self._cells[0], slot + 1)
        return slot

    def free(self, slot: int) -> None:
        """The slot's worker has exited."""
        self._assigned.discard(slot)
        self._cells[1 + _FIELDS * slot] = 0
        self._cells[0] = max(self._assigned, default=-1) + 1

    # In a worker.

    def join(self, slot: int, pid: int) -> None:
        """The slot's worker starts taking connections."""
        self.publish(slot, 0, 0)
        self._cells[1 + _FIELDS * slot] = pid

    def leave(self, slot: int) -> None:
        """The slot's worker takes no more (stopping)."""
        self._cells[1 + _FIELDS * slot] = 0

    def publish(self, slot: int, in_hand: int, connections: int) -> None:
        """The slot's worker has ``in_hand`` requests and ``connections``; its loop turns."""
        base = 1 + _FIELDS * slot
        cells = self._cells
        cells[base + 1] = in_hand
        cells[base + 2] = connections
        cells[base + 3] = _now_ms()

    def least_elsewhere(self, slot: int) -> tuple[int, int] | None:
        """The least (requests in hand, open connections) of any other live worker; None
        when there is none."""
        now, least, cells = _now_ms(), None, self._cells
        for other in range(cells[0]):
            base = 1 + _FIELDS * other
            if other == slot or cells[base] == 0 or now - cells[base + 3] > STALE_MS:
                continue
            load = (cells[base + 1], cells[base + 2])
            if least is None or load < least:
                least = load
        return least


# Set by gunicorn.conf.py's on_starting (the arbiter, before any worker forks) when the
# workers share one socket; None: every worker accepts as plain gthread does.
TABLE: LoadTable | None = None


class ThreadWorker(_GunicornThreadWorker):
    """gthread taking new connections by least load on a shared socket; with
    ``reuse_port``, the worker's sockets close when it stops accepting for good."""

    # Given by the arbiter before the fork (gunicorn.conf.py's pre_fork); used only on a
    # shared socket: with a socket each, a connection the kernel queued on this worker's
    # socket has no other worker to take it.
    table_slot: int | None = None
    slot: int | None = None  # while in the table
    in_hand = 0  # requests handed to the thread pool, not yet finished (main thread only)
    _waiting_since: float | None = None

    def run(self) -> None:
        # Once the app is loaded: a worker loading it would hold the others back.
        if TABLE is not None and self.table_slot is not None and not self.cfg.reuse_port:
            self.slot = self.table_slot
            TABLE.join(self.slot, self.pid)
        try:
            super().run()
        finally:
            self._leave_table()

    def notify(self) -> None:
        super().notify()  # at every turn of gthread's loop
        self._publish()

    def enqueue_req(self, conn) -> None:
        self.in_hand += 1
        super().enqueue_req(conn)

    def finish_request(self, conn, fs) -> None:
        self.in_hand -= 1
        super().finish_request(conn, fs)

    def may_accept(self) -> bool:
        """No other live worker has less in hand, or a connection is overdue."""
        return self._least_loaded() or self._overdue()

    def _least_loaded(self) -> bool:
        if self.slot is None:
            return True
        least = TABLE.least_elsewhere(self.slot)
        if least is None or (self.in_hand, self.nr_conns) <= least:
            self._waiting_since = None  # a wait seen before is not this connection's
            return True
        return False

    def _overdue(self) -> bool:
        """Connections have waited on the listener for OVERDUE_S: the worker that should
        take them has not, so this one takes them until none waits."""
        ready, _, _ = select.select([listener.sock for listener in self.sockets], [], [], 0)
        now = time.monotonic()
        if not ready:
            self._waiting_since = None
            return False
        if self._waiting_since is None:
            self._waiting_since = now
        return now - self._waiting_since >= OVERDUE_S

    def accept(self, listener) -> None:
        if self._least_loaded():
            super().accept(listener)
        elif self._overdue():
            super().accept(listener)
            # Taken for another worker: once none waits, the next connection is left to
            # the least loaded again (gthread calls accept only while one waits).
            self._overdue()
        else:  # another worker has less in hand since this one looked
            _GunicornThreadWorker.set_accept_enabled(self, False)
            return
        self._publish()

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        if self.slot is not None and self.alive:
            timeout = min(timeout, IDLE_POLL_S if self._accepting else HELD_BACK_POLL_S)
        super().wait_for_and_dispatch_events(timeout)

    def _publish(self) -> None:
        if self.slot is not None:
            TABLE.publish(self.slot, self.in_hand, self.nr_conns)

    def _leave_table(self) -> None:
        if self.slot is not None:
            TABLE.leave(self.slot)
            self.slot = None

    def set_accept_enabled(self, enabled: bool) -> None:
        # gthread's loop asks again at its next turn while its connection limit allows.
        if enabled and self.alive and not self.may_accept():
            return
        if not enabled and not self.alive:
            self._leave_table()  # stopping: the others must not wait for this one
        super().set_accept_enabled(enabled)
        # Not accepting while still alive is gthread's connection limit (worker_connections),
        # which lifts again: only a stopping worker gives its sockets up.
        if not enabled and not self.alive and self.cfg.reuse_port:
            for listener in self.sockets:
                listener.close()
