"""Group commit for inbound texts: the texts a web process's threads receive at the same
moment share one transaction.

Under a call-to-action burst each of a worker's threads holds a text, and each text's
transaction costs PostgreSQL a BEGIN, a COMMIT with its WAL flush, and two round trips, and
the worker a pooled connection taken and given back and two waits. Those costs are per
transaction, not per statement. So at most one transaction of texts runs at a time in a
process: a text that arrives while one runs waits for it to end and goes into the next,
with every other text that queued meanwhile (:func:`sms_service.services.inbound.
receive_together`). A text that arrives while nothing runs starts its own at once: a quiet
service answers as fast as before, and a busy one commits several texts at a time.

Nothing is answered before its transaction has committed. A group holds one text per
number; a second text from the same number waits for the next group, which sees what the
first committed (as two texts from one number are decided one after the other anyway), or,
when the first is being received alone (below), until that one is stored.
A Twilio retry of a text already stored is answered in its group with the stored reply.
When a group fails (a retry of a text another process is still storing, a new number
another process created first, a row lock held longer than :data:`LOCK_TIMEOUT_MS`, a text
that cannot be stored, a database error), nothing of it was committed, and each of its
texts is received again alone, in its own thread, at the same time as the next group
(:func:`~sms_service.services.inbound.receive`, with its retries and its answer for a
retry): each text fares exactly as it would have without groups, and one held row never
holds up the other texts for long.

The thread that starts a group (the leader) runs it, then hands the lead to the first text
still waiting, whose thread starts the next group, and wakes the others of its group with
their answers: no thread of its own, nothing to start or stop with the worker.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque

from sqlalchemy.engine import Engine

from sms_service.domain.reach import Reach
from sms_service.domain.replies import Program
from sms_service.services.inbound import InboundResult, InboundSms, receive, receive_together

log = logging.getLogger(__name__)

# At most this many texts in one transaction: a burst's group is as large as the texts
# that queued while the previous one ran, which the worker's threads bound already.
MAX_GROUP = 32
# A group waits at most this long for any row lock (an import or a staff action holding a
# subscriber's row); then it fails and each of its texts is received alone, in its own
# thread, waiting as long as it must while the other texts go on.
LOCK_TIMEOUT_MS = 50


class _Waiting:
    """One text waiting for its group: its answer, or ``alone`` (its group failed: its own
    thread receives it alone), and whether its thread leads."""

    __slots__ = ("sms", "how", "woken", "result", "alone", "leads", "done")

    def __init__(self, sms: InboundSms, how: tuple) -> None:
        self.sms = sms
        self.how = how  # (engine, program, reach): only texts stored alike share a group
        self.woken = threading.Event()
        self.result: InboundResult | None = None
        self.alone = False
        self.leads = False
        self.done = False


class GroupCommit:
    """``receive`` for the threads of one process, grouping the texts that arrive together."""

    def __init__(self, lock_timeout_ms: int = LOCK_TIMEOUT_MS) -> None:
        self.lock_timeout_ms = lock_timeout_ms
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queue: deque[_Waiting] = deque()
        self._running = False
        # Numbers whose texts are being received alone (their group failed): no group takes
        # another text from them until those are stored, so each number's texts keep their
        # order.
        self._alone: Counter[str] = Counter()

    def receive(
        self, engine: Engine, sms: InboundSms, program: Program, reach: Reach | None = None
    ) -> InboundResult:
        """:func:`~sms_service.services.inbound.receive`, in one transaction with the texts
        that arrived with it: committed before this returns."""
        me = _Waiting(sms, (engine, program, reach))
        with self._lock:
            self._queue.append(me)
            me.leads = not self._running
            self._running = True
            self._changed.notify()  # a leader waiting for a text it may take
        try:
            if not me.leads:
                me.woken.wait()
            # The leader is the oldest text waiting, so its group holds it unless an earlier
            # text from its number is being received alone.
            while not me.done:
                self._lead(me)
            if me.alone:
                return receive(engine, sms, program, reach)
            assert me.result is not None
            return me.result
        finally:
            if me.alone:  # counted by the group that failed: this number may go on now
                with self._lock:
                    self._alone[sms.from_number] -= 1
                    if not self._alone[sms.from_number]:
                        del self._alone[sms.from_number]
                    self._changed.notify_all()

    def _lead(self, me: _Waiting) -> None:
        """Take a group off the queue and store it; hand the lead to the oldest text still
        waiting (none: the next text to arrive leads); wake the group's texts."""
        group: list[_Waiting] = []
        interrupted = True  # _store catches every Exception: only a BaseException leaves
        try:
            group = self._take()
            self._store(group)
            interrupted = False
        finally:
            following = None
            with self._lock:
                for waiting in group:
                    if waiting.result is None:  # the group failed (or was interrupted)
                        waiting.alone = True
                        self._alone[waiting.sms.from_number] += 1
                    waiting.done = True
                if interrupted and not me.done:
                    # This thread leaves with the error, its text not stored: it leaves the
                    # queue, and the lead passes on all the same.
                    if me in self._queue:
                        self._queue.remove(me)
                    me.done = True
                if me.done:
                    if self._queue:
                        following = self._queue[0]
                        following.leads = True
                    else:
                        self._running = False
            if following is not None:
                following.woken.set()
            for waiting in group:
                if waiting is not me:
                    waiting.woken.set()

    def _take(self) -> list[_Waiting]:
        """The oldest waiting texts, one per number, up to MAX_GROUP, in arrival order (all
        stored like the first taken), none from a number whose earlier text is being
        received alone; waits until there is one."""
        with self._lock:
            while True:
                group: list[_Waiting] = []
                numbers: set[str] = set(self._alone)
                kept: deque[_Waiting] = deque()
                while self._queue and len(group) < MAX_GROUP:
                    waiting = self._queue.popleft()
                    if waiting.sms.from_number in numbers or (
                        group and waiting.how != group[0].how
                    ):
                        kept.append(waiting)
                    else:
                        numbers.add(waiting.sms.from_number)
                        group.append(waiting)
                kept.extend(self._queue)
                self._queue = kept
                if group:
                    return group
                # Every text waiting is from a number still being received alone: until one
                # of those is stored, or another text arrives.
                self._changed.wait()

    def _store(self, group: list[_Waiting]) -> None:
        """The group in one transaction, each text's answer kept; on any failure, nothing
        (nothing was committed, or, when the connection was lost after COMMIT, each text
        received again is a retry of a stored one, answered with its stored reply)."""
        engine, program, reach = group[0].how
        try:
            results = receive_together(
                engine, [w.sms for w in group], program, reach,
                lock_timeout_ms=self.lock_timeout_ms,
            )  # fmt: skip
        except Exception as exc:
            log.info("a group of %d texts failed (%s); each is received alone", len(group),
                     type(exc).__name__)  # fmt: skip
            return
        for waiting, result in zip(group, results, strict=True):
            waiting.result = result
