"""Sealing the consent log on the worker's schedule.

:class:`Sealing` is a mixin for the RQ workers (``workers.broadcast_worker``): between jobs,
and at least every ``CONSENT_SEAL_SECONDS``, one worker at a time (a Redis lock) seals what
was recorded since the last pass (:func:`sms_service.services.consent_chain.seal_all`).
Like the broadcast sweep it runs in the worker's main loop, never in a thread, so a forking
worker never forks with a lock held.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from sqlalchemy.engine import Engine

from sms_service.db import make_engine
from sms_service.services.consent_chain import seal_all

log = logging.getLogger(__name__)

SEAL_LOCK = "sms:consent:seal-lock"
DEFAULT_INTERVAL = 10.0  # until the settings are read (CONSENT_SEAL_SECONDS)


class Sealing:
    """Mixin for RQ workers: seal the consent log every ``seal_interval`` seconds."""

    seal_interval: float | None = None
    _next_seal: float = 0.0
    _seal_engine: Engine | None = None

    def _seal_settings(self):
        from workers import context

        settings = context.settings()
        if self.seal_interval is None:
            self.seal_interval = settings.consent_seal_seconds
        return settings

    @property
    def dequeue_timeout(self) -> int:  # RQ's API
        # Wake from the blocking dequeue in time for the next pass.
        interval = self.seal_interval or DEFAULT_INTERVAL
        return max(1, min(super().dequeue_timeout, int(interval)))

    @property
    def should_run_maintenance_tasks(self) -> bool:  # RQ's API
        return super().should_run_maintenance_tasks or self._seal_due()

    def run_maintenance_tasks(self) -> None:  # RQ's API
        super().run_maintenance_tasks()
        if self._seal_due():
            self._next_seal = time.monotonic() + (self.seal_interval or 0)
            self._seal()

    def _seal_due(self) -> bool:
        return time.monotonic() >= self._next_seal

    def _seal(self) -> None:
        try:
            settings = self._seal_settings()
            lock_ms = max(int((self.seal_interval or 1) * 900), 100)
            if not self.connection.set(SEAL_LOCK, self.name, nx=True, px=lock_ms):
                return
            if self._seal_engine is None:
                self._seal_engine = make_engine(settings.database_url)
            grace = timedelta(seconds=settings.consent_seal_grace_seconds)
            sealed = seal_all(self._seal_engine, grace=grace)
            if sealed:
                log.info("sealed %d consent events", sealed)
        except Exception:  # maintenance, not a job: log, try next time
            log.exception("consent log sealing failed")
