"""One send rate for every worker process and thread: message segments per second, in Redis.

Carriers meter a sender in segments, so a two-segment message costs two slots. Each call
reserves its slots atomically in a Lua script against one key, the next free time, read
on Redis' own clock (``TIME``): workers on different hosts need no agreement about time,
and waiting callers are spread evenly instead of released in a crowd.

This is GCRA with reservations: a grant never fails (unless ``max_wait`` says so), it
returns how long to wait. After an idle spell at most ``burst`` segments go out back to
back; the key then holds a time in the past that is pulled up to ``now - tolerance``.
If Redis restarts and the key is gone, spacing simply starts again; the script is
reloaded by redis-py when the server has forgotten it.

In any wall-clock second the segments granted stay within
``rate + (burst - 1) + (largest message - 1)``: the last message of a second may spill.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis

from sms_service.errors import ThrottleTimeout

__all__ = ["Throttle", "ThrottleTimeout"]

if TYPE_CHECKING:
    from config import Settings

DEFAULT_KEY = "sms:throttle"
BURST_SHARE = 0.02  # default burst: 2% of a second's worth, at least one segment

# KEYS[1] next free time (microseconds, Redis clock). ARGV: microseconds per segment,
# segments, tolerance (microseconds a grant may run ahead), longest wait accepted (-1: any).
# Returns {1, wait} when reserved, {0, wait} when the wait is over the limit (nothing taken).
_RESERVE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local cost = tonumber(ARGV[1]) * tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local free = tonumber(redis.call('GET', KEYS[1])) or 0
if free < now - tolerance then
  free = now - tolerance
end
local wait = math.max(free - now, 0)
if limit >= 0 and wait > limit then
  return {0, math.ceil(wait)}
end
local after = free + cost
local ttl = math.max(math.ceil((after - now) / 1000), 0) + 1000  -- after < now when idle
redis.call('SET', KEYS[1], string.format('%.0f', after), 'PX', ttl)
return {1, math.ceil(wait)}
"""


class Throttle:
    """A rate limiter in segments per second, shared through one Redis key.

    ``rate <= 0`` disables it: every call is granted at once without touching Redis.
    ``burst`` is how many segments may leave back to back after an idle spell.
    """

    def __init__(
        self,
        connection: redis.Redis,
        *,
        rate: float,
        key: str = DEFAULT_KEY,
        burst: float | None = None,
    ) -> None:
        if not math.isfinite(rate):
            raise ValueError(f"throttle rate must be a finite number, not {rate!r}")
        self.connection = connection
        self.rate = float(rate)
        self.key = key
        self.burst = max(1.0, self.rate * BURST_SHARE) if burst is None else float(burst)
        if not self.burst >= 1:
            raise ValueError(f"throttle burst must be at least one segment, not {burst!r}")
        self._interval_us = 1_000_000 / self.rate if self.enabled else 0.0
        self._tolerance_us = (self.burst - 1) * self._interval_us
        self._script = connection.register_script(_RESERVE) if self.enabled else None

    @classmethod
    def for_settings(cls, settings: Settings, *, connection: redis.Redis) -> Throttle:
        """The throttle every sender shares, at ``settings.sender_mps``."""
        return cls(connection, rate=settings.sender_mps)

    @property
    def enabled(self) -> bool:
        """False when the rate is zero or negative: no limit at all."""
        return self.rate > 0

    def reserve(self, segments: int = 1, *, max_wait: float | None = None) -> float:
        """Reserve ``segments`` slots; return the seconds to wait before sending them.

        Raises :class:`ThrottleTimeout` (reserving nothing) if the wait would exceed
        ``max_wait`` seconds.
        """
        if isinstance(segments, bool) or not isinstance(segments, int) or segments < 1:
            raise ValueError(f"segments must be a positive integer, not {segments!r}")
        if self._script is None:
            return 0.0
        limit = -1 if max_wait is None else max(0, math.floor(max_wait * 1_000_000))
        args = [f"{self._interval_us:.6f}", segments, f"{self._tolerance_us:.6f}", limit]
        granted, wait_us = self._script(keys=[self.key], args=args)
        if not granted:
            raise ThrottleTimeout(wait_us / 1_000_000)
        return wait_us / 1_000_000

    def acquire(
        self,
        segments: int = 1,
        *,
        max_wait: float | None = None,
        sleep: Callable[[float], object] = time.sleep,
    ) -> float:
        """Reserve ``segments`` slots and sleep until they start; return the seconds slept."""
        wait = self.reserve(segments, max_wait=max_wait)
        if wait > 0:
            sleep(wait)
        return wait
