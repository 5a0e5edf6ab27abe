"""How far a broadcast has got: deliveries per state, skips per reason, carrier reports.

``delivered`` and ``undelivered`` come from the status callbacks the sender records
(:class:`~sms_service.models.MessageStatusEvent`, one per sid and status), joined on the
sid each delivery was accepted with, so a callback that beat the send's own commit still
counts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlmodel import Session

from sms_service.broadcasts.figures import Counts, folded, kept, settled
from sms_service.broadcasts.runs import OPEN_DELIVERY, get_broadcast
from sms_service.domain.broadcast_gate import DeliveryReason
from sms_service.domain.carrier_status import MessageStatus
from sms_service.models import (
    Broadcast,
    BroadcastDelivery,
    BroadcastRun,
    BroadcastStatus,
    DeliveryStatus,
    MessageStatusEvent,
    RunStatus,
)

STATES = tuple(s.value for s in DeliveryStatus)
CARRIER_FAILED = (MessageStatus.UNDELIVERED, MessageStatus.FAILED)


@dataclass
class RunProgress:
    """Counts for one run. ``counts`` has every delivery state (zeros included)."""

    run_id: int
    occurrence_at: datetime
    status: str
    planned: int
    counts: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  # by reason
    failed: dict[str, int] = field(default_factory=dict)  # by reason
    deferred_until: datetime | None = None
    delivered: int = 0
    undelivered: int = 0

    @property
    def open(self) -> int:
        """Deliveries not settled yet (pending, sending or deferred)."""
        return sum(self.counts.get(s, 0) for s in OPEN_DELIVERY)

    @property
    def done(self) -> bool:
        """True once the run will send nothing more."""
        return self.status not in (RunStatus.SCHEDULED, RunStatus.SENDING) and not self.open


@dataclass
class BroadcastProgress:
    """A broadcast and its most recent runs, newest first."""

    broadcast_id: int
    status: str
    body: str
    audience: str
    recurrence: str
    timezone: str
    send_at: datetime
    segments: int
    encoding: str
    runs: list[RunProgress]

    @property
    def current(self) -> RunProgress | None:
        """The latest run that has started (sending or over), if any."""
        return next((run for run in self.runs if run.status != RunStatus.SCHEDULED), None)

    @property
    def done(self) -> bool:
        """True when nothing is being sent: the broadcast is over, or a recurring one is
        back to waiting for its next occurrence after a finished run."""
        if self.status in (BroadcastStatus.SENT, BroadcastStatus.CANCELLED, BroadcastStatus.FAILED):
            return all(run.done for run in self.runs)
        current = self.current
        return self.status == BroadcastStatus.SCHEDULED and current is not None and current.done

    def as_dict(self) -> dict:
        """Plain data for ``--json`` (datetimes as ISO strings)."""
        data = asdict(self)
        data["send_at"] = self.send_at.isoformat()
        for run in data["runs"]:
            run["occurrence_at"] = run["occurrence_at"].isoformat()
            if run["deferred_until"] is not None:
                run["deferred_until"] = run["deferred_until"].isoformat()
        return data


def run_progress(*, session: Session, run: BroadcastRun) -> RunProgress:
    """Counts for one run: a grouped query over its deliveries, one over callbacks (read
    from the kept figures once the run has settled, see :mod:`.figures`)."""
    result = RunProgress(run.id, run.occurrence_at, run.status, run.planned)
    result.counts = dict.fromkeys(STATES, 0)
    rows = kept(session, run, "states", lambda: _states(session, run.id), after=timedelta(0),
                final=lambda rows: not any(r[0] in OPEN_DELIVERY for r in rows))  # fmt: skip
    for status, reason, count, not_before in rows:
        result.counts[status] = result.counts.get(status, 0) + count
        if status == DeliveryStatus.SKIPPED:
            result.skipped[reason or DeliveryReason.UNKNOWN] = count
        elif status == DeliveryStatus.FAILED:
            result.failed[reason or DeliveryReason.ERROR] = count
        elif status == DeliveryStatus.DEFERRED and not_before is not None:
            not_before = datetime.fromisoformat(not_before)
            if result.deferred_until is None or not_before < result.deferred_until:
                result.deferred_until = not_before
    if run.started_at is not None and not settled(run):  # reports still coming
        counts = folded(session, run, "reports",
                        lambda start, end: _report_counts(session, run, start, end))  # fmt: skip
        reported = sorted(counts.items())
    else:
        reported = kept(session, run, "reports", lambda: _reports(session, run))
    for status, count in reported:
        if status == MessageStatus.DELIVERED:
            result.delivered = count
        else:
            result.undelivered += count
    return result


def _states(session: Session, run_id: int) -> list[list]:
    """[status, reason, count, earliest not_before (ISO) or None] per (status, reason)."""
    d = BroadcastDelivery.__table__
    rows = session.execute(
        select(d.c.status, d.c.reason, func.count(), func.min(d.c.not_before))
        .where(d.c.run_id == run_id)
        .group_by(d.c.status, d.c.reason)
    ).all()
    return [[s, r, n, nb.isoformat() if nb else None] for s, r, n, nb in rows]


def _reports(session: Session, run: BroadcastRun) -> list[list]:
    """[carrier status, recipients] for delivered and failed reports on the run's sids."""
    return [[status, n] for status, n in sorted(_report_counts(session, run).items())]


def _report_counts(
    session: Session,
    run: BroadcastRun,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Counts:
    """Recipients per carrier status (delivered and failed ones) among the reports on the
    run's sids recorded in ``[start, end)`` (None: unbounded).

    Reports are recorded after the run started, so only that stretch of the reports
    table (its time index) is read, not every report ever received. Each (sid, status)
    is recorded once and each recipient has one sid in a run, so the counts of
    consecutive stretches add up to the count of the whole. From the start, the reports
    are joined with the run's deliveries; a later stretch (a few seconds or minutes of
    reports, see :func:`~sms_service.broadcasts.figures.folded`) looks each report's sid
    up instead (``ix_broadcast_deliveries_sid``), which reads none of the run's other
    deliveries."""
    d, e = BroadcastDelivery.__table__, MessageStatusEvent.__table__
    window = [e.c.occurred_at >= t for t in (run.started_at, start) if t is not None]
    if end is not None:
        window.append(e.c.occurred_at < end)
    wanted = e.c.status.in_((MessageStatus.DELIVERED, *CARRIER_FAILED))
    if start is None:
        query = (
            select(e.c.status, func.count(func.distinct(d.c.subscriber_id)))
            .select_from(d.join(e, e.c.sid == d.c.sid))
            .where(d.c.run_id == run.id, wanted, *window)
        )
    else:
        sent_in = (
            select(d.c.run_id).where(d.c.sid == e.c.sid).limit(1).scalar_subquery()
        )  # one delivery per sid: a scalar look-up per report, not a join
        query = select(e.c.status, func.count()).where(wanted, *window, sent_in == run.id)
    rows = session.execute(query.group_by(e.c.status)).all()
    return {status: n for status, n in rows}


def broadcast_progress(*, session: Session, broadcast_id: int, runs: int = 3) -> BroadcastProgress:
    """The broadcast with its ``runs`` latest started (or next scheduled) runs."""
    broadcast: Broadcast = get_broadcast(session, broadcast_id)
    latest = session.execute(
        select(BroadcastRun)
        .where(BroadcastRun.broadcast_id == broadcast_id)
        .order_by(BroadcastRun.occurrence_at.desc())
        .limit(runs)
    ).scalars()
    return BroadcastProgress(
        broadcast_id=broadcast.id,
        status=broadcast.status,
        body=broadcast.body,
        audience=broadcast.audience,
        recurrence=broadcast.recurrence,
        timezone=broadcast.timezone,
        send_at=broadcast.send_at,
        segments=broadcast.segments,
        encoding=broadcast.encoding,
        runs=[run_progress(session=session, run=run) for run in latest],
    )
