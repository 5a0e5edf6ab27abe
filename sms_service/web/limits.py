"""Every rate limit a request falls under, counted in one Redis round trip.

The forms that can send a text (the petition page, the API's signatures) fall under several
limits at once: per client address (often two windows, "30 per minute;500 per hour"), per
number, per API token. flask-limiter counts each with a Redis call of its own, and its
per-request bookkeeping (resolving the limits, their scopes and exemptions) cost more CPU
than the calls; on the petition form it was a fifth of the request's Python time
(``bench/README.md``, petition_rate). Here one Lua script counts them all.

Each window is a fixed window opened by its first hit, as flask-limiter's default strategy
counts: a counter that expires ``seconds`` after it was created. The windows are counted in
the order given and counting stops at the first one over its amount (that attempt counted
in it too, so hammering a refused limit keeps it refused); the request is refused with the
seconds until that window ends (``Retry-After``). A limit is a setting's text as
flask-limiter reads it ("5 per hour", "30/minute;500/hour"), parsed once per text by the
``limits`` library, and each window has its own key, so changing a setting starts new
counts rather than reading old ones against a new amount.

Counters live where flask-limiter's do (:func:`sms_service.web.security.limiter_storage_uri`):
Redis, shared by every worker and host; for development without Redis, the ``limits``
library's storage for that URI (``memory://``: per process), one call per window. The keys
carry no phone number in clear: callers pass a hashed key.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from functools import lru_cache

import redis
from limits import parse_many
from limits.storage import storage_from_string

# KEYS: one counter per window. ARGV: the cost, then per key its amount and its seconds.
# Returns {0, 0} when every window had room, else {i, ms}: the 1-based index of the first
# window over its amount and the milliseconds until it ends (windows after it not counted).
_HIT = """
local cost = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local count = redis.call('INCRBY', key, cost)
  if count == cost then
    redis.call('EXPIRE', key, tonumber(ARGV[2 * i + 1]))
  end
  if count > tonumber(ARGV[2 * i]) then
    return {i, redis.call('PTTL', key)}
  end
end
return {0, 0}
"""

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


@lru_cache(maxsize=64)
def windows(limit: str) -> tuple[tuple[int, int], ...]:
    """``(amount, seconds)`` of each window in a limit's text, e.g. "30/minute;500/hour"."""
    return tuple((item.amount, item.get_expiry()) for item in parse_many(limit))


class RequestLimits:
    """Counts a request against all its limits at once (see the module)."""

    def __init__(self, storage_uri: str, *, prefix: str) -> None:
        self.prefix = prefix
        if storage_uri.startswith(REDIS_SCHEMES):
            client = redis.Redis.from_url(
                storage_uri, socket_connect_timeout=2, socket_timeout=2
            )  # a Redis outage answers 500 quickly, as flask-limiter's storage does
            self._script = client.register_script(_HIT)
            self._storage = None
        else:
            self._script = None
            self._storage = storage_from_string(storage_uri)

    def hit(self, limits: Sequence[tuple[str, str]], cost: int = 1) -> int | None:
        """Count one request under each ``(limit text, key)``; None when all had room, else
        the whole seconds (at least 1) until the limit that refused it lets it through."""
        keys: list[str] = []
        args: list[int] = [cost]
        for limit, key in limits:
            for amount, seconds in windows(limit):
                keys.append(f"{self.prefix}:{key}:{amount}/{seconds}")
                args += (amount, seconds)
        if not keys:
            return None
        if self._script is not None:
            refused, wait_ms = self._script(keys=keys, args=args)
            if not refused:
                return None
            return max(1, math.ceil(int(wait_ms) / 1000))
        return self._hit_storage(keys, args)

    def _hit_storage(self, keys: list[str], args: list[int]) -> int | None:
        """The script's loop, one storage call per window (development without Redis)."""
        cost = args[0]
        for i, key in enumerate(keys):
            amount, seconds = args[1 + 2 * i], args[2 + 2 * i]
            if self._storage.incr(key, seconds, amount=cost) > amount:
                return max(1, math.ceil(self._storage.get_expiry(key) - time.time()))
        return None
