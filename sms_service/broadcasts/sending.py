"""Sending a run: claim a batch, check it, hand it to Twilio, record what happened.

Exactly once is kept by the database, in three transactions per batch:

1. **Claim** (committed before any call): up to ``chunk`` pending deliveries move to
   ``sending`` with an attempt id and time (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
   senders never wait for each other). In the same transaction each is checked
   (:mod:`sms_service.domain.broadcast_gate`): skipped (consent, a possible opt-out
   under review, frequency cap) or
   deferred (quiet hours) rows are settled at once; the rest go on.
2. **Send**: the run's advisory lock is taken shared (a cancel, which takes it
   exclusively, waits for us, and we see a committed cancel), our delivery rows are locked
   ``FOR UPDATE`` and their subscribers ``FOR SHARE``, re-checking ``subscribed``. A STOP
   locks its subscriber ``FOR UPDATE``, so it commits either before this check (the text
   is skipped) or after this transaction, which stays open until every API call of the
   batch has returned: nothing is sent to a number after its STOP commits. Outcomes are
   written in the same transaction.
3. **Carrier verdicts** (opted out at the carrier, invalid number) are applied after.

If the process dies in step 2, the claim stays committed (``sending``) and unlocked. Such
a row is **reconciled** once its attempt is older than the lease (longer than the HTTP
timeout, so no call of that attempt can still be in flight): the carrier is asked for a
message to that number with that body since the attempt (:func:`sms_service.carrier.sender.
reconcile_outcome`); found → ``sent``; not found → ``pending`` again. Recoverers lock rows
``FOR UPDATE SKIP LOCKED``, so a live sender's batch is never touched.

On SQLite (no row locks) each transaction starts with a write, which serialises it
against every other writer: simple and correct, one batch at a time.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from twilio.rest import Client

from config import Settings
from sms_service.broadcasts.clients import ClientPool
from sms_service.broadcasts.ledger import settle, write_outcomes
from sms_service.broadcasts.recovery import Recoverer
from sms_service.broadcasts.runs import finish_run, lock_run
from sms_service.broadcasts.texts import RunTexts
from sms_service.broadcasts.tuning import Tuning
from sms_service.carrier import sender
from sms_service.carrier.throttle import Throttle
from sms_service.db import session_scope
from sms_service.domain import broadcast_gate as gate
from sms_service.domain.carrier_status import CarrierVerdict, Outcome, verdict_of_refusal
from sms_service.domain.phones import mask
from sms_service.models import (
    BroadcastDelivery,
    BroadcastRun,
    DeliveryStatus,
    RunStatus,
    Subscriber,
    utcnow,
)
from sms_service.services.reviews import subscribers_under_review
from sms_service.services.status_reports import apply_carrier_verdict

log = logging.getLogger(__name__)

delivery_table = BroadcastDelivery.__table__
subscriber_table = Subscriber.__table__
run_table = BroadcastRun.__table__


@dataclass
class LaneReport:
    """What one call of :meth:`RunSender.send_run` did."""

    batches: int = 0
    claimed: int = 0
    sent: int = 0
    skipped: int = 0
    deferred: int = 0
    failed: int = 0
    unknown: int = 0
    recovered: int = 0
    out_of_time: bool = False
    finished: bool = False
    wake_at: datetime | None = None
    wake_times: set[datetime] = field(default_factory=set)

    def merge(self, parts: list[LaneReport]) -> None:
        """Add up the reports of the pipelines of one lane."""
        for part in parts:
            for name in ("batches", "claimed", "sent", "skipped", "deferred", "failed",
                         "unknown"):  # fmt: skip
                setattr(self, name, getattr(self, name) + getattr(part, name))
            self.out_of_time = self.out_of_time or part.out_of_time
            self.wake_times |= part.wake_times


@dataclass(frozen=True)
class _Target:
    subscriber_id: int
    phone: str
    body: str  # the run's text in the recipient's language


class RunSender:
    """Sends the deliveries of runs; one per job, used from one thread."""

    def __init__(
        self,
        *,
        engine: Engine,
        settings: Settings,
        pool: ClientPool,
        throttle: Throttle,
        tuning: Tuning | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.pool = pool
        self.throttle = throttle
        self.tuning = tuning or Tuning()
        self.clock = clock
        self.rules = gate.Rules.from_settings(settings)
        self.sqlite = engine.dialect.name == "sqlite"
        self.status_callback = sender.status_callback_url(settings)
        self.recovery = Recoverer(engine=engine, pool=pool, tuning=self.tuning, clock=clock)

    # -- the lane -------------------------------------------------------------------------

    def send_run(self, run_id: int, *, max_seconds: float = 300.0) -> LaneReport:
        """Settle old attempts, then claim and send batches until nothing is claimable or
        ``max_seconds`` pass; close the run when nothing is left open.

        ``tuning.pipelines`` batches are in progress at once (threads sharing the pool of
        API threads), so one batch's database work overlaps another's API calls.
        """
        report = LaneReport()
        deadline = time.monotonic() + max_seconds
        report.recovered = self.recovery.recover(run_id)
        self.recovery.release_due(run_id)
        body = self._body(run_id)
        if body is not None:
            pipelines = 1 if self.sqlite else self.tuning.pipelines
            parts = [LaneReport() for _ in range(pipelines)]
            errors: list[BaseException] = []

            def pipeline(part: LaneReport) -> None:
                try:
                    self._pipeline(run_id, body, deadline, part)
                except BaseException as exc:  # re-raised below, in the job
                    errors.append(exc)

            threads = [
                threading.Thread(target=pipeline, args=(part,), name=f"bcast-batch-{n}")
                for n, part in enumerate(parts[1:], start=1)
            ]
            for thread in threads:
                thread.start()
            pipeline(parts[0])
            for thread in threads:
                thread.join()
            if errors:
                raise errors[0]
            report.merge(parts)
        if not report.out_of_time:
            with session_scope(self.engine) as session:
                report.finished = finish_run(session=session, run_id=run_id, now=self.clock())
        report.wake_at = self.recovery.next_wake(run_id)
        return report

    def _pipeline(self, run_id: int, body: RunTexts, deadline: float, report: LaneReport) -> None:
        """Claim and send batch after batch, in subscriber order from a cursor of its own."""
        segments = body.segments
        cursor = 0
        while True:
            if time.monotonic() > deadline:
                report.out_of_time = True
                return
            attempt = uuid.uuid4().hex
            claimed, targets = self._claim(run_id, cursor, attempt, segments, body, report)
            if not claimed:
                if cursor == 0:
                    return
                cursor = 0  # one more pass from the start: rows put back behind us
                continue
            cursor = claimed[-1]
            if targets:
                self._send(run_id, attempt, targets, segments, report)

    def _body(self, run_id: int) -> RunTexts | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(run_table.c.status, run_table.c.body, run_table.c.body_es).where(
                    run_table.c.id == run_id
                )
            ).first()
        if row is None or row.status != RunStatus.SENDING or not row.body:
            return None
        return RunTexts(row.body, row.body_es or None)

    def _chunk(self, segments: int) -> int:
        # Under a throttle a batch holds its locks for about size / rate seconds.
        if not self.throttle.enabled:
            return self.tuning.chunk
        fits = int(self.throttle.rate * self.tuning.max_lock_seconds / max(segments, 1))
        return max(1, min(self.tuning.chunk, fits))

    # -- step 1: claim and check ----------------------------------------------------------

    def _claim(
        self, run_id: int, after: int, attempt: str, segments: int, body: RunTexts,
        report: LaneReport,
    ) -> tuple[list[int], list[_Target]]:  # fmt: skip
        """Claim the next batch after ``after`` (committed), check it, return the ids
        claimed and the targets still to send to."""
        now = self.clock()
        limit = self._chunk(segments)
        picked = (
            select(delivery_table.c.subscriber_id)
            .where(
                delivery_table.c.run_id == run_id, delivery_table.c.status == DeliveryStatus.PENDING
            )
            .where(delivery_table.c.subscriber_id > after)
            .order_by(delivery_table.c.subscriber_id)
            .limit(limit)
        )
        if not self.sqlite:
            picked = picked.with_for_update(skip_locked=True)
        # A materialised CTE runs the LIMIT once. As ``IN (subquery)`` PostgreSQL may
        # re-run it per row while the UPDATE locks rows, and claim the whole run.
        picked = picked.cte("picked").prefix_with("MATERIALIZED")
        claim = (
            update(delivery_table)
            .where(
                delivery_table.c.run_id == run_id, delivery_table.c.status == DeliveryStatus.PENDING
            )
            .where(delivery_table.c.subscriber_id == picked.c.subscriber_id)
            .values(
                status=DeliveryStatus.SENDING,
                attempt_id=attempt,
                attempt_started_at=now,
                attempts=delivery_table.c.attempts + 1,
                reason=None,
                error_code=None,
                updated_at=now,
            )
            .returning(delivery_table.c.subscriber_id)
        )
        with self.engine.begin() as conn:
            claimed = sorted(conn.execute(claim).scalars())
            if not claimed:
                return [], []
            report.batches += 1
            report.claimed += len(claimed)
            targets = self._screen(conn, run_id, attempt, claimed, now, body, report)
        return claimed, targets

    def _screen(self, conn, run_id, attempt, ids, now, body, report) -> list[_Target]:
        """Check the claimed rows; settle skips and deferrals in the claim's transaction."""
        people = conn.execute(
            select(
                subscriber_table.c.id,
                subscriber_table.c.phone,
                subscriber_table.c.status,
                subscriber_table.c.timezone,
                subscriber_table.c.language,
            ).where(subscriber_table.c.id.in_(ids))
        ).all()
        since = now - gate.CAP_WINDOW
        recent = dict(
            conn.execute(
                select(delivery_table.c.subscriber_id, func.count())
                .where(
                    delivery_table.c.subscriber_id.in_(ids), delivery_table.c.sent_at.is_not(None)
                )
                .where(delivery_table.c.sent_at >= since)
                .group_by(delivery_table.c.subscriber_id)
            ).all()
        )
        held = subscribers_under_review(conn, ids)
        recipients = [
            gate.Recipient(p.phone, p.status, p.timezone, recent.get(p.id, 0), p.id in held)
            for p in people
        ]
        verdicts = gate.decide_batch(recipients, now, self.rules)
        settled, targets = [], []
        for person, verdict in zip(people, verdicts, strict=True):
            if verdict.action is gate.Action.SEND:
                targets.append(_Target(person.id, person.phone, body.for_language(person.language)))
            elif verdict.action is gate.Action.DEFER:
                settled.append(
                    settle(
                        person.id,
                        DeliveryStatus.DEFERRED,
                        verdict.reason,
                        now,
                        not_before=verdict.not_before,
                    )
                )
                report.deferred += 1
                report.wake_times.add(verdict.not_before)
            else:
                settled.append(settle(person.id, DeliveryStatus.SKIPPED, verdict.reason, now))
                report.skipped += 1
        missing = set(ids) - {p.id for p in people}
        for subscriber_id in missing:  # a row whose subscriber is gone: nobody to send to
            settled.append(
                settle(
                    subscriber_id, DeliveryStatus.SKIPPED, gate.DeliveryReason.NO_SUBSCRIBER, now
                )
            )
            report.skipped += 1
        write_outcomes(conn, run_id, attempt, settled)
        return targets

    # -- step 2: send under locks ---------------------------------------------------------

    def _send(self, run_id, attempt, targets, segments, report) -> None:
        wait = self.throttle.reserve(segments * len(targets))
        if wait > 0:
            time.sleep(wait)  # outside any transaction: no lock is held while waiting
        verdicts = self._send_locked(run_id, attempt, targets, segments, report)
        self._apply_carrier_verdicts(verdicts)

    def _send_locked(self, run_id, attempt, targets, segments, report) -> list:
        carrier_verdicts = []
        with self.engine.begin() as conn:
            if self.sqlite:
                conn.execute(
                    update(run_table)
                    .where(run_table.c.id == run_id)
                    .values(status=run_table.c.status)
                )
            lock_run(conn, run_id, exclusive=False)  # a cancel waits for this batch
            run_status = conn.execute(
                select(run_table.c.status).where(run_table.c.id == run_id)
            ).scalar_one()
            ids = [t.subscriber_id for t in targets]
            now = self.clock()
            if run_status != RunStatus.SENDING:
                cancelled = run_status == RunStatus.CANCELLED
                reason = (
                    gate.DeliveryReason.CANCELLED if cancelled else gate.DeliveryReason.RUN_CLOSED
                )
                rows = [settle(i, DeliveryStatus.SKIPPED, reason, now) for i in ids]
                write_outcomes(conn, run_id, attempt, rows)
                report.skipped += len(rows)
                return []
            mine = dict(
                conn.execute(
                    select(delivery_table.c.subscriber_id, delivery_table.c.attempts)
                    .where(
                        delivery_table.c.run_id == run_id, delivery_table.c.subscriber_id.in_(ids)
                    )
                    .where(
                        delivery_table.c.status == DeliveryStatus.SENDING,
                        delivery_table.c.attempt_id == attempt,
                    )
                    .with_for_update()
                ).all()
            )
            status = dict(
                conn.execute(
                    select(subscriber_table.c.id, subscriber_table.c.status)
                    .where(subscriber_table.c.id.in_(sorted(mine)))
                    .order_by(subscriber_table.c.id)
                    .with_for_update(read=True)
                ).all()
            )
            # A possible opt-out texted in commits under the subscriber's row lock, as a
            # STOP does, so one committed before this batch holds it.
            held = subscribers_under_review(conn, status)
            rows, go = [], []
            for target in targets:
                if target.subscriber_id not in mine:
                    continue  # settled by someone else meanwhile (a recoverer): not ours
                subscriber_id = target.subscriber_id
                verdict = gate.consent_verdict(
                    status.get(subscriber_id, "none"), subscriber_id in held
                )
                if verdict.action is gate.Action.SEND:
                    go.append(target)
                else:
                    rows.append(settle(subscriber_id, DeliveryStatus.SKIPPED, verdict.reason, now))
                    report.skipped += 1
            due = self._pace(len(go), segments)
            results = self.pool.map(self._call, go, due)
            now = self.clock()
            for target, (outcome, error) in zip(go, results, strict=True):
                if error is not None:  # not an API answer: the call may have gone out
                    log.exception("send to %s raised", mask(target.phone), exc_info=error)
                    outcome = sender.SendOutcome(kind=Outcome.UNKNOWN, error_message=repr(error))
                attempts = mine[target.subscriber_id]
                rows.append(self._settle_outcome(target, attempts, outcome, now, report))
                verdict = verdict_of_refusal(outcome.kind)
                if verdict is not CarrierVerdict.NONE:
                    carrier_verdicts.append((target.phone, verdict, outcome.error_code))
            write_outcomes(conn, run_id, attempt, rows)
        return carrier_verdicts

    def _pace(self, count: int, segments: int) -> list[float] | None:
        if not self.throttle.enabled or count == 0:
            return None
        start = time.monotonic()
        step = segments / self.throttle.rate
        return [start + i * step for i in range(count)]

    def _call(self, client: Client, target: _Target) -> sender.SendOutcome:
        return sender.send_sms(
            client,
            to=target.phone,
            body=target.body,
            from_=self.settings.twilio_from,
            messaging_service_sid=self.settings.twilio_messaging_service_sid,
            status_callback=self.status_callback,
        )

    def _settle_outcome(self, target: _Target, attempts: int, outcome, now: datetime,
                        report: LaneReport) -> dict:  # fmt: skip
        """The delivery row's settlement for one API answer (``attempts`` counts this one)."""
        subscriber_id = target.subscriber_id
        if outcome.kind is Outcome.ACCEPTED:
            report.sent += 1
            return settle(
                subscriber_id,
                DeliveryStatus.SENT,
                None,
                now,
                twilio_sid=outcome.sid,
                segments=outcome.num_segments or None,
                sent_at=now,
            )
        if outcome.kind is Outcome.UNKNOWN:
            # Stays ``sending``: reconciled with the carrier once the lease is over.
            report.unknown += 1
            return settle(
                subscriber_id,
                DeliveryStatus.SENDING,
                gate.DeliveryReason.UNKNOWN,
                None,
                code=outcome.error_code,
            )
        if outcome.kind is Outcome.RETRYABLE and attempts >= self.tuning.max_attempts:
            report.failed += 1  # the carrier kept refusing: give up rather than loop
            return settle(
                subscriber_id,
                DeliveryStatus.FAILED,
                gate.DeliveryReason.RETRIES_EXHAUSTED,
                now,
                code=outcome.error_code,
            )
        if outcome.kind is Outcome.RETRYABLE:
            report.deferred += 1
            later = now + self.tuning.retry_after
            report.wake_times.add(later)
            return settle(
                subscriber_id,
                DeliveryStatus.DEFERRED,
                gate.DeliveryReason.RETRY,
                now,
                not_before=later,
                code=outcome.error_code,
            )
        if outcome.kind is Outcome.OPTED_OUT:
            report.skipped += 1
            return settle(
                subscriber_id,
                DeliveryStatus.SKIPPED,
                gate.DeliveryReason.CARRIER_OPTED_OUT,
                now,
                code=outcome.error_code,
            )
        report.failed += 1
        invalid = outcome.kind is Outcome.INVALID_NUMBER
        reason = gate.DeliveryReason.INVALID_NUMBER if invalid else gate.DeliveryReason.ERROR
        return settle(subscriber_id, DeliveryStatus.FAILED, reason, now, code=outcome.error_code)

    def _apply_carrier_verdicts(self, verdicts: list) -> None:
        if not verdicts:
            return
        with session_scope(self.engine) as session:
            for phone, verdict, code in verdicts:
                apply_carrier_verdict(
                    session, phone, verdict, program=self.settings.program_name, error_code=code
                )

    # -- settling old attempts ------------------------------------------------------------
