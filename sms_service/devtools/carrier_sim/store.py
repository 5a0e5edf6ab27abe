"""The simulator's memory: accepted messages, opt-outs, conversations and counters.

Everything is bounded so a benchmark of 100k+ sends does not grow without limit: the
oldest messages are forgotten past ``max_messages``, conversations keep their last
entries for the most recently active numbers, and the per-second histogram keeps an hour.

A message's status is not stored but read off its timeline::

    queued (sent_at) > sent (final_at) > delivered | undelivered | failed

so no timer runs per message when status callbacks are off.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

CONVERSATION_ENTRIES = 200
CONVERSATION_NUMBERS = 50_000
HISTOGRAM_SECONDS = 3600


@dataclass(slots=True)
class SimMessage:
    """One outbound message the simulator accepted, with its pre-drawn fate."""

    sid: str
    to: str
    from_: str | None
    body: str
    messaging_service_sid: str | None
    status_callback: str | None
    num_segments: int
    created: float
    sent_at: float
    final_at: float
    final_status: str = "delivered"
    error_code: int | None = None
    validity_period: int | None = None

    def status_at(self, now: float) -> str:
        """The status the message has reached at Unix time ``now``."""
        if now < self.sent_at:
            return "queued"
        if now < self.final_at:
            return "sent"
        return self.final_status

    def updated_at(self, now: float) -> float:
        """When the status last changed, as of ``now``."""
        if now < self.sent_at:
            return self.created
        if now < self.final_at:
            return self.sent_at
        return self.final_at


class MessageStore:
    """Accepted messages by sid, in arrival order, indexed by recipient.

    Most recipients of a broadcast get one message, so the index holds a bare sid until a
    recipient has two (a deque per number would cost ~600 bytes each).
    """

    def __init__(self, max_messages: int) -> None:
        self.max_messages = max_messages
        self.by_sid: dict[str, SimMessage] = {}
        self.order: deque[str] = deque()
        self.by_to: dict[str, str | deque[str]] = {}
        self.evicted = 0

    def __len__(self) -> int:
        return len(self.by_sid)

    def add(self, message: SimMessage) -> None:
        """Keep ``message``; forget the oldest one when over the limit."""
        sid, to = message.sid, message.to
        self.by_sid[sid] = message
        self.order.append(sid)
        known = self.by_to.get(to)
        if known is None:
            self.by_to[to] = sid
        elif isinstance(known, str):
            self.by_to[to] = deque((known, sid))
        else:
            known.append(sid)
        while len(self.order) > self.max_messages:
            self._forget_oldest()

    def _forget_oldest(self) -> None:
        oldest = self.by_sid.pop(self.order.popleft())
        sids = self.by_to[oldest.to]
        if isinstance(sids, str):
            del self.by_to[oldest.to]
        else:
            sids.popleft()  # the oldest message of its recipient too
            if len(sids) == 1:
                self.by_to[oldest.to] = sids[0]
        self.evicted += 1

    def get(self, sid: str) -> SimMessage | None:
        """The message with ``sid``, if still kept."""
        return self.by_sid.get(sid)

    def newest_first(self, to: str | None = None) -> Iterator[SimMessage]:
        """Messages, newest first; only those to ``to`` when given."""
        if to is None:
            sids: Iterable[str] = self.order
        else:
            known = self.by_to.get(to, ())
            sids = (known,) if isinstance(known, str) else known
        by_sid = self.by_sid
        return (by_sid[sid] for sid in reversed(sids))

    def clear(self) -> None:
        """Forget every message."""
        self.by_sid.clear()
        self.order.clear()
        self.by_to.clear()
        self.evicted = 0


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of a conversation: an inbound text or a reply the webhook gave."""

    at: float
    direction: str  # "inbound" | "outbound-reply"
    body: str
    sid: str | None = None


class Conversations:
    """Per-number logs of inbound texts and TwiML replies (API sends live in the store)."""

    def __init__(self) -> None:
        self._logs: OrderedDict[str, deque[Entry]] = OrderedDict()

    def append(self, number: str, entry: Entry) -> None:
        """Add ``entry`` to ``number``'s log, forgetting the least recently active numbers."""
        log = self._logs.get(number)
        if log is None:
            log = self._logs[number] = deque(maxlen=CONVERSATION_ENTRIES)
            while len(self._logs) > CONVERSATION_NUMBERS:
                self._logs.popitem(last=False)
        else:
            self._logs.move_to_end(number)
        log.append(entry)

    def entries(self, number: str) -> list[Entry]:
        """``number``'s inbound texts and replies, oldest first."""
        return list(self._logs.get(number, ()))

    def replies(self, number: str | None = None) -> list[tuple[str, Entry]]:
        """Webhook replies as ``(number, entry)``: to ``number``, or to everyone."""
        numbers = [number] if number is not None else list(self._logs)
        return [
            (n, entry)
            for n in numbers
            for entry in self._logs.get(n, ())
            if entry.direction == "outbound-reply"
        ]

    def clear(self) -> None:
        """Forget every conversation."""
        self._logs.clear()


@dataclass
class Stats:
    """Counters for ``GET /sim/stats``."""

    accepted: int = 0
    rejected: Counter[int] = field(default_factory=Counter)
    peak_in_flight: int = 0
    callbacks_sent: int = 0
    callbacks_failed: int = 0
    inbound: int = 0
    per_second: dict[int, int] = field(default_factory=dict)

    def count_accepted(self, now: float) -> None:
        """One more accepted send at Unix time ``now``."""
        self.accepted += 1
        second = int(now)
        per_second = self.per_second
        if second in per_second:
            per_second[second] += 1
            return
        per_second[second] = 1
        # A new second: drop the ones that fell out of the window (dicts keep order).
        while len(per_second) > HISTOGRAM_SECONDS:
            del per_second[next(iter(per_second))]

    def rate_summary(self) -> dict[str, float]:
        """Peak and mean accepted sends per second over the seconds that had any."""
        if not self.per_second:
            return {"peak": 0, "mean": 0.0, "busy_seconds": 0}
        counts = list(self.per_second.values())
        first, last = min(self.per_second), max(self.per_second)
        return {
            "peak": max(counts),
            "mean": round(sum(counts) / (last - first + 1), 1),
            "busy_seconds": len(counts),
        }
