"""How broadcast senders work: batch size, concurrency, lease. Read from the environment.

These are operational knobs, not program policy, so they sit beside the senders rather
than in ``Settings``: ``BROADCAST_CHUNK`` (recipients claimed per batch, 50),
``BROADCAST_CONCURRENCY`` (API calls in flight per job, 100), ``BROADCAST_PIPELINES``
(batches in progress at once per job, 2), ``BROADCAST_LEASE_SECONDS``
(age after which an unfinished attempt is settled with the carrier, 60),
``BROADCAST_CLIENT_TIMEOUT`` (Twilio HTTP timeout, 30; must be below the lease),
``BROADCAST_MAX_ATTEMPTS`` (5) and ``BROADCAST_RETRY_SECONDS`` (wait after a transient
refusal, 15).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Tuning:
    """How a sender works. ``lease`` must exceed the Twilio client's ``client_timeout``:
    an attempt older than the lease cannot have a call in flight any more."""

    chunk: int = 50
    concurrency: int = 100
    pipelines: int = 2
    lease: timedelta = timedelta(seconds=60)
    client_timeout: float = 30.0
    max_attempts: int = 5
    retry_after: timedelta = timedelta(seconds=15)
    max_lock_seconds: float = 2.0

    def __post_init__(self) -> None:
        if min(self.chunk, self.concurrency, self.pipelines, self.max_attempts) < 1:
            raise ValueError("chunk, concurrency, pipelines and max_attempts must be >= 1")
        if self.lease.total_seconds() <= self.client_timeout:
            raise ValueError("the lease must be longer than the Twilio client's timeout")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Tuning:
        """Tuning from ``BROADCAST_*`` variables; defaults for those not set."""
        base = cls()

        def number(name: str, default: float) -> float:
            raw = environ.get(name)
            try:
                return float(raw) if raw not in (None, "") else default
            except ValueError:
                raise ValueError(f"{name} must be a number, not {raw!r}") from None

        return cls(
            chunk=int(number("BROADCAST_CHUNK", base.chunk)),
            concurrency=int(number("BROADCAST_CONCURRENCY", base.concurrency)),
            pipelines=int(number("BROADCAST_PIPELINES", base.pipelines)),
            lease=timedelta(seconds=number("BROADCAST_LEASE_SECONDS", base.lease.total_seconds())),
            client_timeout=number("BROADCAST_CLIENT_TIMEOUT", base.client_timeout),
            max_attempts=int(number("BROADCAST_MAX_ATTEMPTS", base.max_attempts)),
            retry_after=timedelta(
                seconds=number("BROADCAST_RETRY_SECONDS", base.retry_after.total_seconds())
            ),
        )
