"""Runs of a broadcast: inserting occurrences, planning recipients, starting and closing.

Each occurrence of a broadcast is one :class:`~sms_service.models.BroadcastRun`, unique on
``(broadcast_id, occurrence_at)``, so inserting the next occurrence twice (two workers
starting the same run, a sweeper catching up) leaves one row. Starting a run moves it out
of ``scheduled`` with the run row locked and plans it in the same transaction, so a job
delivered twice plans once. Nothing here commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import case, func, insert, literal, select, text, update
from sqlalchemy.sql import Select
from sqlmodel import Session

from sms_service.db import dialect_insert
from sms_service.domain.recurrence import Recurrence
from sms_service.errors import BadRequest, NotFound
from sms_service.models import (
    AudienceKind,
    Broadcast,
    BroadcastDelivery,
    BroadcastNumber,
    BroadcastRun,
    BroadcastStatus,
    Campaign,
    DeliveryStatus,
    RunStatus,
    Signature,
    Subscriber,
    SubscriberStatus,
    SubscriberTag,
    utcnow,
)

ANALYZE_ABOVE = 10_000  # planned rows after which the table's statistics are refreshed
# Namespace of the advisory locks on runs (pg_advisory_xact_lock(class, run id)): "bcst".
RUN_LOCK_CLASS = 0x62637374
OPEN_DELIVERY = (DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.DEFERRED)


def get_broadcast(session: Session, broadcast_id: int, *, lock: bool = False) -> Broadcast:
    """The broadcast, optionally locked ``FOR UPDATE``; NotFound if there is none."""
    query = select(Broadcast).where(Broadcast.id == broadcast_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    found = session.execute(query).scalar_one_or_none()
    if found is None:
        raise NotFound(f"no broadcast {broadcast_id}")
    return found


def audience_query(broadcast: Broadcast) -> Select:
    """``SELECT subscribers.id`` for everyone the broadcast reaches now (subscribed only)."""
    subs = Subscriber.__table__
    query = select(subs.c.id).where(subs.c.status == SubscriberStatus.SUBSCRIBED)
    kind = broadcast.audience_kind
    if kind == AudienceKind.CAMPAIGN:
        sig = Signature.__table__
        query = query.join(sig, sig.c.subscriber_id == subs.c.id).where(
            sig.c.campaign_id == broadcast.audience_campaign_id
        )
    elif kind == AudienceKind.TAG:
        tags = SubscriberTag.__table__
        query = query.join(tags, tags.c.subscriber_id == subs.c.id).where(
            tags.c.tag == broadcast.audience_value
        )
    elif kind == AudienceKind.LIST:
        nums = BroadcastNumber.__table__
        query = query.join(nums, nums.c.phone == subs.c.phone).where(
            nums.c.broadcast_id == broadcast.id
        )
    elif kind != AudienceKind.ALL:
        raise BadRequest(f"unknown audience kind {kind!r}")
    return query


def insert_run(*, session: Session, broadcast_id: int, occurrence_at: datetime) -> BroadcastRun:
    """The run for this occurrence, inserted unless it exists (the unique key decides)."""
    now = utcnow()
    statement = (
        dialect_insert(session)(BroadcastRun.__table__)
        .values(
            broadcast_id=broadcast_id,
            occurrence_at=occurrence_at.astimezone(UTC),
            status=RunStatus.SCHEDULED,
            planned=0,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["broadcast_id", "occurrence_at"])
    )
    session.connection().execute(statement)
    return session.execute(
        select(BroadcastRun).where(
            BroadcastRun.broadcast_id == broadcast_id,
            BroadcastRun.occurrence_at == occurrence_at.astimezone(UTC),
        )
    ).scalar_one()


def next_occurrence_after(broadcast: Broadcast, after: datetime) -> datetime | None:
    """The broadcast's first occurrence strictly after ``after``; None for a one-off."""
    return Recurrence(broadcast.send_at, broadcast.timezone, broadcast.recurrence).next_after(after)


def plan_run(*, session: Session, broadcast: Broadcast, run_id: int, now: datetime) -> int:
    """Write one pending delivery per recipient with one ``INSERT … SELECT``; the count.

    The first planning of a run is a plain insert: the caller holds the run row, moved
    out of ``scheduled`` in the same transaction, so nobody else plans it, and the
    primary key (run, subscriber) refuses a duplicate outright. Planning a run that
    already has rows (a resumed or repeated plan) adds the missing ones with
    ``ON CONFLICT DO NOTHING``, which costs about twice as much per row on PostgreSQL.
    """
    table = BroadcastDelivery.__table__
    recipients = audience_query(broadcast).subquery()
    rows = select(
        literal(run_id).label("run_id"),
        recipients.c.id,
        literal(DeliveryStatus.PENDING.value).label("status"),
        literal(0).label("attempts"),
        literal(now, type_=table.c.updated_at.type).label("updated_at"),
    ).where(recipients.c.id.is_not(None))  # SQLite needs a WHERE before ON CONFLICT
    columns = ["run_id", "subscriber_id", "status", "attempts", "updated_at"]
    existing = session.execute(
        select(table.c.run_id).where(table.c.run_id == run_id).limit(1)
    ).first()
    if existing is None:
        statement = insert(table).from_select(columns, rows)
    else:
        statement = (
            dialect_insert(session)(table)
            .from_select(columns, rows)
            .on_conflict_do_nothing(index_elements=["run_id", "subscriber_id"])
        )
    session.connection().execute(statement)
    return session.execute(
        select(func.count()).select_from(table).where(table.c.run_id == run_id)
    ).scalar_one()


@dataclass(frozen=True)
class StartedRun:
    """What starting a run did: its plan, and the next occurrence's run to enqueue."""

    run_id: int
    broadcast_id: int
    planned: int
    next_run: BroadcastRun | None
    finished: bool


def begin_run(*, session: Session, run_id: int, now: datetime | None = None) -> StartedRun | None:
    """Scheduled → sending: plan the recipients and insert the next occurrence's run.

    Returns None when the run is missing or not ``scheduled`` (already started: a second
    delivery of the same job does nothing). A cancelled broadcast cancels the run; an
    audience that cannot be planned fails it. A run with nobody to send to is finished at
    once.
    """
    now = now or utcnow()
    run = session.get(BroadcastRun, run_id)
    if run is None:
        return None
    broadcast = get_broadcast(session, run.broadcast_id, lock=True)
    run = session.execute(
        select(BroadcastRun)
        .where(BroadcastRun.id == run_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    if run.status != RunStatus.SCHEDULED:
        return None
    if broadcast.status in (BroadcastStatus.CANCELLED, BroadcastStatus.FAILED):
        run.status, run.cancelled_at, run.finished_at = RunStatus.CANCELLED, now, now
        session.add(run)
        session.flush()
        return None
    next_run = None
    upcoming = next_occurrence_after(broadcast, run.occurrence_at)
    if upcoming is not None:
        next_run = insert_run(session=session, broadcast_id=broadcast.id, occurrence_at=upcoming)
    if broadcast.audience_kind == AudienceKind.CAMPAIGN and (
        broadcast.audience_campaign_id is None
        or session.get(Campaign, broadcast.audience_campaign_id) is None
    ):
        run.status, run.error, run.finished_at = RunStatus.FAILED, "campaign not found", now
        session.add(run)
        session.flush()
        refresh_broadcast_status(session=session, broadcast=broadcast, now=now)
        return StartedRun(run.id, broadcast.id, 0, next_run, True)
    run.status = RunStatus.SENDING
    run.body = broadcast.body
    run.body_es = broadcast.body_es
    run.started_at = now
    session.add(run)
    session.flush()
    run.planned = plan_run(session=session, broadcast=broadcast, run_id=run.id, now=now)
    if run.planned >= ANALYZE_ABOVE and session.get_bind().dialect.name == "postgresql":
        # Fresh statistics, or each sender's claim may sort the whole run to take one batch.
        session.execute(text("ANALYZE broadcast_deliveries"))
    finished = run.planned == 0
    if finished:
        run.status, run.finished_at = RunStatus.SENT, now
    session.add(run)
    session.flush()
    refresh_broadcast_status(session=session, broadcast=broadcast, now=now)
    return StartedRun(run.id, broadcast.id, run.planned, next_run, finished)


def refresh_broadcast_status(*, session: Session, broadcast: Broadcast, now: datetime) -> str:
    """Derive the broadcast's status from its runs (caller holds the broadcast row).

    Cancelled, failed and draft broadcasts keep their status. Otherwise: a run sending →
    ``sending``; else a run scheduled → ``scheduled``; else ``failed`` if the last run
    failed, ``sent`` if not.
    """
    if broadcast.status in (
        BroadcastStatus.CANCELLED,
        BroadcastStatus.FAILED,
        BroadcastStatus.DRAFT,
    ):
        return broadcast.status
    statuses = set(
        session.execute(
            select(BroadcastRun.status).where(BroadcastRun.broadcast_id == broadcast.id).distinct()
        ).scalars()
    )
    if RunStatus.SENDING in statuses:
        new = BroadcastStatus.SENDING
    elif RunStatus.SCHEDULED in statuses:
        new = BroadcastStatus.SCHEDULED
    else:
        last = session.execute(
            select(BroadcastRun.status)
            .where(BroadcastRun.broadcast_id == broadcast.id)
            .order_by(BroadcastRun.occurrence_at.desc())
            .limit(1)
        ).scalar_one_or_none()
        new = BroadcastStatus.FAILED if last == RunStatus.FAILED else BroadcastStatus.SENT
    if broadcast.status != new:
        broadcast.status = new
        broadcast.updated_at = now
        session.add(broadcast)
        session.flush()
    return new


def finish_run(*, session: Session, run_id: int, now: datetime | None = None) -> bool:
    """Close a run with no delivery left pending, sending or deferred; True if closed now.

    A sending run becomes ``sent``; a cancelled one just gets ``finished_at`` (its last
    unknown attempts have been settled with the carrier).
    """
    now = now or utcnow()
    run = session.get(BroadcastRun, run_id)
    if run is None or run.finished_at is not None:
        return False
    broadcast = get_broadcast(session, run.broadcast_id, lock=True)
    d = BroadcastDelivery.__table__
    runs = BroadcastRun.__table__
    still_open = (
        select(d.c.run_id).where(d.c.run_id == run_id, d.c.status.in_(OPEN_DELIVERY)).exists()
    )
    closed = session.connection().execute(
        update(runs)
        .where(
            runs.c.id == run_id,
            runs.c.status.in_((RunStatus.SENDING, RunStatus.CANCELLED)),
            runs.c.finished_at.is_(None),
            ~still_open,
        )
        .values(
            status=case((runs.c.status == RunStatus.SENDING, RunStatus.SENT), else_=runs.c.status),
            finished_at=now,
        )
    )
    if closed.rowcount != 1:
        return False
    session.expire_all()
    refresh_broadcast_status(session=session, broadcast=broadcast, now=now)
    return True


def lock_run(connection, run_id: int, *, exclusive: bool) -> None:
    """Take the run's transaction-scoped advisory lock (PostgreSQL; a no-op on SQLite,
    where every writing transaction is serialised anyway).

    Senders hold it shared while they check the run and make their API calls; a cancel
    takes it exclusively. Advisory locks are queued fairly: a cancel waits for the
    batches in flight, and batches that start after it wait for the cancel to commit and
    then see it. A share *row* lock would not do: batches overlapping without end would
    keep an ``UPDATE`` of the run waiting until the run had finished.
    """
    if connection.dialect.name != "postgresql":
        return
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    connection.execute(
        text(f"SELECT {function}(:class, :run)"), {"class": RUN_LOCK_CLASS, "run": run_id}
    )
