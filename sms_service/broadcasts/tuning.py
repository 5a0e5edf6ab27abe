"""How broadcast senders and workers work: batch size, concurrency, lease, lanes, sweeps.

Operational knobs, not program policy. They are ``BROADCAST_*`` fields of
:class:`config.Settings` (documented in the README's configuration table);
:meth:`Tuning.from_settings` gathers them for the senders, the jobs and the sweeper. The
lease is also the single-send pipeline's (:mod:`sms_service.carrier.sender`): one length
for every attempt the service may have to settle with the carrier.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from config import Settings


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
    lanes: int = 4  # senders started per run
    lane_seconds: float = 300.0  # a sender hands over to a fresh job after this long
    # A lane refreshes its run's alive key every third of this; the sweeper adds senders to
    # a run with work and no key, so this is how long a dead sender goes unnoticed.
    alive_ttl: timedelta = timedelta(seconds=15)
    sweep_seconds: float = 30.0  # how often a worker puts back what Redis lost

    def __post_init__(self) -> None:
        if min(self.chunk, self.concurrency, self.pipelines, self.max_attempts, self.lanes) < 1:
            raise ValueError("chunk, concurrency, pipelines, max_attempts and lanes must be >= 1")
        if self.lease.total_seconds() <= self.client_timeout:
            raise ValueError("the lease must be longer than the Twilio client's timeout")

    @classmethod
    def from_settings(cls, settings: Settings) -> Tuning:
        """The ``BROADCAST_*`` settings as one value."""
        return cls(
            chunk=settings.broadcast_chunk,
            concurrency=settings.broadcast_concurrency,
            pipelines=settings.broadcast_pipelines,
            lease=timedelta(seconds=settings.broadcast_lease_seconds),
            client_timeout=settings.broadcast_client_timeout,
            max_attempts=settings.broadcast_max_attempts,
            retry_after=timedelta(seconds=settings.broadcast_retry_seconds),
            lanes=settings.broadcast_lanes,
            lane_seconds=settings.broadcast_lane_seconds,
            alive_ttl=timedelta(seconds=settings.broadcast_alive_seconds),
            sweep_seconds=settings.broadcast_sweep_seconds,
        )
