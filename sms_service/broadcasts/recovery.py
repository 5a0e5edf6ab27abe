"""Settling attempts nobody is finishing: deferred rows that are due, and claims whose
worker died or whose answer was lost.

A delivery left in ``sending`` is never sent again on a guess. Once its attempt is older
than the lease (longer than the HTTP client's timeout, so none of that attempt's calls
can still be in flight) and no live sender holds its row (``FOR UPDATE SKIP LOCKED``),
the carrier is asked (:func:`sms_service.carrier.sender.reconcile_outcome`: messages to that
number with that body since the attempt): found → ``sent`` with that sid; not found →
``pending`` again, or ``skipped`` if the run was cancelled meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from sms_service.broadcasts.clients import ClientPool
from sms_service.broadcasts.ledger import settle, write_outcomes
from sms_service.broadcasts.runs import OPEN_DELIVERY
from sms_service.broadcasts.tuning import Tuning
from sms_service.carrier import sender
from sms_service.domain.broadcast_gate import DeliveryReason
from sms_service.domain.phones import mask
from sms_service.models import (
    BroadcastDelivery,
    BroadcastRun,
    DeliveryStatus,
    OutboundMessage,
    RunStatus,
    Subscriber,
)

log = logging.getLogger(__name__)

delivery_table = BroadcastDelivery.__table__
subscriber_table = Subscriber.__table__
run_table = BroadcastRun.__table__
outbound_table = OutboundMessage.__table__


class Recoverer:
    """Settles a run's due deferrals and stale attempts (see the module docstring)."""

    def __init__(
        self, *, engine: Engine, pool: ClientPool, tuning: Tuning, clock: Callable[[], datetime]
    ) -> None:
        self.engine = engine
        self.pool = pool
        self.tuning = tuning
        self.clock = clock
        self.sqlite = engine.dialect.name == "sqlite"

    def release_due(self, run_id: int) -> int:
        """Deferred rows whose time has come go back to pending; how many."""
        now = self.clock()
        with self.engine.begin() as conn:
            return conn.execute(
                update(delivery_table)
                .where(
                    delivery_table.c.run_id == run_id,
                    delivery_table.c.status == DeliveryStatus.DEFERRED,
                )
                .where(delivery_table.c.not_before <= now)
                .values(status=DeliveryStatus.PENDING, updated_at=now)
            ).rowcount

    def recover(self, run_id: int, *, batch: int = 100) -> int:
        """Settle attempts older than the lease that no live sender holds: ask the carrier
        whether each text went; record it as sent, or put the row back (or skip it if the
        run was cancelled). Returns how many rows were settled.

        A failure to ask the carrier raises, after the rows already settled are committed:
        the job retries later rather than resend blind.
        """
        total = 0
        while True:
            settled, failures = self._recover_batch(run_id, batch)
            total += settled
            if failures:
                raise failures[0]
            if settled < batch:
                return total

    def _recover_batch(self, run_id: int, batch: int) -> tuple[int, list[Exception]]:
        cutoff = self.clock() - self.tuning.lease
        failures: list[Exception] = []
        with self.engine.begin() as conn:
            if self.sqlite:
                conn.execute(
                    update(run_table)
                    .where(run_table.c.id == run_id)
                    .values(status=run_table.c.status)
                )
            run = conn.execute(
                select(run_table.c.status, run_table.c.body, run_table.c.body_es).where(
                    run_table.c.id == run_id
                )
            ).first()
            if run is None:
                return 0, failures
            query = (
                select(
                    delivery_table.c.subscriber_id,
                    delivery_table.c.attempt_id,
                    delivery_table.c.attempt_started_at,
                    delivery_table.c.attempts,
                    subscriber_table.c.phone,
                )
                .select_from(
                    delivery_table.join(
                        subscriber_table, subscriber_table.c.id == delivery_table.c.subscriber_id
                    )
                )
                .where(
                    delivery_table.c.run_id == run_id,
                    delivery_table.c.status == DeliveryStatus.SENDING,
                )
                .where(delivery_table.c.attempt_started_at < cutoff)
                .order_by(delivery_table.c.subscriber_id)
                .limit(batch)
            )
            if not self.sqlite:
                query = query.with_for_update(of=delivery_table, skip_locked=True)
            stale = conn.execute(query).all()
            if not stale:
                return 0, failures
            exclude = _known_sids(conn, stale)
            results = self.pool.map(
                lambda client, row: sender.reconcile_outcome(
                    client,
                    to=row.phone,
                    body=run.body or "",
                    since=row.attempt_started_at,
                    exclude=exclude.get(row.subscriber_id, ()),
                    other_bodies=(run.body_es,) if run.body_es else (),
                ),
                stale,
            )
            now = self.clock()
            settled = 0
            for row, (found, error) in zip(stale, results, strict=True):
                if error is not None:
                    failures.append(error)
                    continue
                verdict = self._verdict(row, found, run.status, now)
                write_outcomes(conn, run_id, row.attempt_id, [verdict])
                settled += 1
        return settled, failures

    def _verdict(self, row, found, run_status, now) -> dict:
        subscriber_id = row.subscriber_id
        if found is not None:
            log.info("reconciled %s: sent as %s", mask(row.phone), found.sid)
            return settle(
                subscriber_id,
                DeliveryStatus.SENT,
                None,
                now,
                twilio_sid=found.sid,
                segments=found.num_segments or None,
                sent_at=row.attempt_started_at,
            )
        if run_status == RunStatus.CANCELLED:
            return settle(subscriber_id, DeliveryStatus.SKIPPED, DeliveryReason.CANCELLED, now)
        if row.attempts >= self.tuning.max_attempts:
            return settle(
                subscriber_id, DeliveryStatus.FAILED, DeliveryReason.RETRIES_EXHAUSTED, now
            )
        return settle(subscriber_id, DeliveryStatus.PENDING, DeliveryReason.RECONCILED, now)

    def next_wake(self, run_id: int) -> datetime | None:
        """When this run next has work that no job is doing now: the earliest deferred
        time, or the earliest lease end of an attempt in flight."""
        with self.engine.connect() as conn:
            deferred, started = conn.execute(
                select(
                    func.min(delivery_table.c.not_before).filter(
                        delivery_table.c.status == DeliveryStatus.DEFERRED
                    ),
                    func.min(delivery_table.c.attempt_started_at).filter(
                        delivery_table.c.status == DeliveryStatus.SENDING
                    ),
                ).where(
                    delivery_table.c.run_id == run_id, delivery_table.c.status.in_(OPEN_DELIVERY)
                )
            ).one()
        return wake_time(deferred, started, self.tuning.lease)


def wake_time(
    deferred_until: datetime | None, oldest_attempt: datetime | None, lease: timedelta
) -> datetime | None:
    """When a run next has work that no job is doing: its earliest deferral, or the end of
    the lease of its oldest attempt in flight (then it is reconciled); None if neither."""
    times = [t for t in (deferred_until, oldest_attempt + lease if oldest_attempt else None) if t]
    return min(times) if times else None


def _known_sids(conn, stale) -> dict[int, set[str]]:
    """Per subscriber, the sids already recorded for texts to them around the attempts
    (broadcast deliveries and other outbound messages): never to be taken for this one."""
    since = min(row.attempt_started_at for row in stale) - sender.RECONCILE_SKEW
    ids = [row.subscriber_id for row in stale]
    known: dict[int, set[str]] = {i: set() for i in ids}
    for subscriber_id, sid in conn.execute(
        select(delivery_table.c.subscriber_id, delivery_table.c.sid)
        .where(
            delivery_table.c.subscriber_id.in_(ids),
            delivery_table.c.sent_at.is_not(None),
            delivery_table.c.sent_at >= since,
        )
        .where(delivery_table.c.sid.is_not(None))
    ):
        known[subscriber_id].add(sid)
    phones = {row.phone: row.subscriber_id for row in stale}
    for phone, sid in conn.execute(
        select(outbound_table.c.to_number, outbound_table.c.sid).where(
            outbound_table.c.to_number.in_(list(phones)),
            outbound_table.c.sid.is_not(None),
            outbound_table.c.created_at >= since,
        )
    ):
        known[phones[phone]].add(sid)
    return known
