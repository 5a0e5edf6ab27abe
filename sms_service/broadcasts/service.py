"""Broadcasts as organisers see them: create, estimate, schedule, cancel, list.

Keyword-only functions taking the caller's session; none of them commits. The CLI and the
RQ jobs (:mod:`workers.broadcast`) own the transactions and enqueue follow-up jobs after
the commit.

Lock order, kept everywhere so two transactions never wait on each other in a circle:
broadcast row (``FOR UPDATE``) → run (advisory lock, then row) → delivery rows. The
senders take the run's advisory lock (shared) and then delivery and subscriber rows,
never the broadcast row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select, update
from sqlmodel import Session

from sms_service.broadcasts.runs import audience_query, get_broadcast, insert_run, lock_run
from sms_service.domain import segments as seg
from sms_service.domain.audience import AudienceSpec, NumberList
from sms_service.domain.broadcast_gate import DeliveryReason
from sms_service.domain.recurrence import parse_rule
from sms_service.domain.zones import zone_named
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
    Subscriber,
    SubscriberStatus,
    utcnow,
)

MAX_BODY_CHARS = 1600  # Twilio refuses longer bodies (error 21617)


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; BadRequest when unknown."""
    try:
        return zone_named(name)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def local_to_utc(text: str, tz: str) -> datetime:
    """Read an ISO date-time typed by an organiser in ``tz`` (an explicit offset wins)."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadRequest(f"{text!r} is not an ISO date-time such as 2026-12-01T09:00") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone(tz))
    return when.astimezone(UTC)


@dataclass(frozen=True)
class Estimate:
    """What a body costs for an audience, and the cheaper text when UCS-2 is avoidable."""

    segments: int
    encoding: str
    recipients: int
    cost: Decimal
    ucs2_warning: str | None
    gsm_safe_body: str | None  # offered only when it differs and fits GSM-7

    @property
    def gsm_safe_segments(self) -> int | None:
        """Segments the GSM-safe body would cost, if one is offered."""
        return seg.count_segments(self.gsm_safe_body).segments if self.gsm_safe_body else None


def estimate_body(body: str, recipients: int, cost_per_segment: float) -> Estimate:
    """Segments, cost and the UCS-2 warning for ``body`` sent to ``recipients``."""
    info = seg.count_segments(body)
    safe = seg.make_gsm_safe(body)
    offer = safe if safe != body and seg.count_segments(safe).is_gsm else None
    return Estimate(
        segments=info.segments,
        encoding=str(info.encoding),
        recipients=recipients,
        cost=seg.estimate_cost(info.segments, recipients, cost_per_segment),
        ucs2_warning=seg.ucs2_warning(body),
        gsm_safe_body=offer,
    )


def create_broadcast(
    *,
    session: Session,
    body: str,
    audience: AudienceSpec,
    timezone: str,
    body_es: str | None = None,
    send_at: datetime | None = None,
    recurrence: str = "none",
    numbers: NumberList | None = None,
    created_by: str | None = None,
    now: datetime | None = None,
) -> Broadcast:
    """Store a draft broadcast (and its number list); BadRequest/NotFound on bad input.

    ``send_at`` (aware; None = now) is the first occurrence. ``audience`` ``file:...``
    needs ``numbers``: every line is kept, valid numbers in E.164 and invalid ones with
    the reason, so nothing is dropped without a record. ``body_es`` (optional) is sent
    instead of ``body`` to subscribers whose language is Spanish.
    """
    now = now or utcnow()
    rule = _check(body, body_es, timezone, recurrence)
    send_at = _aware(send_at or now)
    kind, value, campaign_id = _audience_columns(session, audience, numbers)
    info = seg.count_segments(body)
    broadcast = Broadcast(
        body=body,
        body_es=body_es,
        audience_kind=kind,
        audience_value=value,
        audience_campaign_id=campaign_id,
        send_at=send_at.astimezone(UTC),
        timezone=timezone,
        recurrence=rule.value,
        status=BroadcastStatus.DRAFT,
        segments=info.segments,
        encoding=str(info.encoding),
        created_by=created_by,
        created_at=now,
        updated_at=now,
    )
    session.add(broadcast)
    session.flush()
    if numbers is not None and kind == AudienceKind.LIST:
        _store_numbers(session, broadcast.id, numbers)
    return broadcast


def _check(body: str, body_es: str | None, timezone: str, recurrence: str):
    """The recurrence rule, once body, Spanish body, zone and rule are valid."""
    if not body or not body.strip():
        raise BadRequest("a broadcast needs a body")
    if body_es is not None and not body_es.strip():
        raise BadRequest("the Spanish body is empty; leave it out to send the body to everyone")
    for name, text in (("body", body), ("Spanish body", body_es or "")):
        if len(text) > MAX_BODY_CHARS:
            raise BadRequest(f"the {name} is {len(text)} characters; the most a text takes is 1600")
    zone(timezone)
    try:
        return parse_rule(recurrence)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def _aware(send_at: datetime) -> datetime:
    if send_at.tzinfo is None or send_at.utcoffset() is None:
        raise BadRequest("send_at must be timezone-aware")
    return send_at


def update_draft(
    *,
    session: Session,
    broadcast_id: int,
    body: str,
    audience: AudienceSpec,
    timezone: str,
    send_at: datetime,
    recurrence: str = "none",
    now: datetime | None = None,
) -> Broadcast:
    """Change a draft's text, audience, first occurrence or recurrence (its Spanish body
    stays). BadRequest unless it is still a draft, and for a draft sent to an uploaded
    number list (the list is the CLI's: ``broadcast create --audience file:…``)."""
    broadcast = get_broadcast(session, broadcast_id, lock=True)
    if broadcast.status != BroadcastStatus.DRAFT:
        raise BadRequest(
            f"broadcast {broadcast_id} is {broadcast.status}: only a draft can be edited"
        )
    if broadcast.audience_kind == AudienceKind.LIST or audience.kind == "file":
        raise BadRequest("a draft to an uploaded number list is changed with the CLI")
    rule = _check(body, broadcast.body_es, timezone, recurrence)
    kind, value, campaign_id = _audience_columns(session, audience, None)
    info = seg.count_segments(body)
    broadcast.body = body
    broadcast.audience_kind, broadcast.audience_value = kind, value
    broadcast.audience_campaign_id = campaign_id
    broadcast.send_at = _aware(send_at).astimezone(UTC)
    broadcast.timezone = timezone
    broadcast.recurrence = rule.value
    broadcast.segments, broadcast.encoding = info.segments, str(info.encoding)
    broadcast.updated_at = now or utcnow()
    session.add(broadcast)
    session.flush()
    return broadcast


def _audience_columns(
    session: Session, audience: AudienceSpec, numbers: NumberList | None
) -> tuple[str, str | None, int | None]:
    if audience.kind == "all":
        return AudienceKind.ALL, None, None
    if audience.kind == "tag":
        return AudienceKind.TAG, audience.value, None
    if audience.kind == "campaign":
        campaign = session.execute(
            select(Campaign).where(func.upper(Campaign.keyword) == audience.value)
        ).scalar_one_or_none()
        if campaign is None:
            raise NotFound(f"no campaign with keyword {audience.value}")
        return AudienceKind.CAMPAIGN, campaign.keyword, campaign.id
    if numbers is None:
        raise BadRequest("a file audience needs its list of numbers")
    if not numbers.numbers:
        raise BadRequest("the number list has no valid number")
    return AudienceKind.LIST, audience.value, None


def _store_numbers(session: Session, broadcast_id: int, numbers: NumberList) -> None:
    rows = [
        dict(broadcast_id=broadcast_id, line=line, raw=raw, phone=e164, error=None)
        for line, raw, e164 in numbers.numbers
    ] + [
        dict(broadcast_id=broadcast_id, line=bad.line, raw=bad.raw, phone=None, error=bad.reason)
        for bad in numbers.invalid
    ]
    session.connection().execute(insert(BroadcastNumber.__table__), rows)


def audience_size(*, session: Session, broadcast: Broadcast) -> int:
    """How many subscribers the broadcast would reach if planned now."""
    counted = select(func.count()).select_from(audience_query(broadcast).subquery())
    return session.execute(counted).scalar_one()


@dataclass(frozen=True)
class ListReport:
    """An uploaded list against the subscribers: what will and will not be sent to."""

    valid: int
    invalid: tuple[tuple[int, str, str], ...]  # (line, raw, reason)
    not_subscribed: int


def list_report(*, session: Session, broadcast_id: int) -> ListReport:
    """Valid and invalid lines of a broadcast's number list, and valid numbers that are
    not (or no longer) subscribed, so will not be sent to."""
    nums = BroadcastNumber.__table__
    subs = Subscriber.__table__
    invalid = session.execute(
        select(nums.c.line, nums.c.raw, nums.c.error)
        .where(nums.c.broadcast_id == broadcast_id, nums.c.phone.is_(None))
        .order_by(nums.c.line)
    ).all()
    valid = session.execute(
        select(func.count()).where(nums.c.broadcast_id == broadcast_id, nums.c.phone.is_not(None))
    ).scalar_one()
    reachable = session.execute(
        select(func.count())
        .select_from(nums.join(subs, subs.c.phone == nums.c.phone))
        .where(nums.c.broadcast_id == broadcast_id, subs.c.status == SubscriberStatus.SUBSCRIBED)
    ).scalar_one()
    return ListReport(valid, tuple(tuple(row) for row in invalid), valid - reachable)


def schedule_broadcast(
    *, session: Session, broadcast_id: int, now: datetime | None = None
) -> BroadcastRun:
    """Draft → scheduled: insert the first run (at ``send_at``) and return it.

    Scheduling twice returns the same run. The caller enqueues its start job after commit.
    """
    broadcast = get_broadcast(session, broadcast_id, lock=True)
    if broadcast.status in (BroadcastStatus.CANCELLED, BroadcastStatus.FAILED):
        raise BadRequest(f"broadcast {broadcast_id} is {broadcast.status}")
    run = insert_run(session=session, broadcast_id=broadcast_id, occurrence_at=broadcast.send_at)
    if broadcast.status == BroadcastStatus.DRAFT:
        broadcast.status = BroadcastStatus.SCHEDULED
        broadcast.updated_at = now or utcnow()
        session.add(broadcast)
        session.flush()
    return run


@dataclass(frozen=True)
class CancelResult:
    """What a cancel did: the runs it stopped and the deliveries it will never send."""

    broadcast_id: int
    runs: tuple[int, ...]
    skipped: int
    already: bool = False


def cancel_broadcast(
    *, session: Session, broadcast_id: int, now: datetime | None = None
) -> CancelResult:
    """Stop a broadcast: no send starts after this transaction commits.

    Scheduled and sending runs become ``cancelled`` and their pending or deferred
    deliveries ``skipped`` (reason ``cancelled``). The cancel takes each run's advisory
    lock exclusively (:func:`~.runs.lock_run`): a batch already handing texts to Twilio
    finishes first, and every later batch sees the cancel before its first call. Attempts whose
    outcome is unknown are still settled with the carrier afterwards.
    """
    now = now or utcnow()
    broadcast = get_broadcast(session, broadcast_id, lock=True)
    if broadcast.status == BroadcastStatus.CANCELLED:
        return CancelResult(broadcast_id, (), 0, already=True)
    if broadcast.status in (BroadcastStatus.SENT, BroadcastStatus.FAILED):
        raise BadRequest(f"broadcast {broadcast_id} is already {broadcast.status}")
    runs = BroadcastRun.__table__
    open_runs = (RunStatus.SCHEDULED, RunStatus.SENDING)
    candidates = session.execute(
        select(runs.c.id)
        .where(runs.c.broadcast_id == broadcast_id, runs.c.status.in_(open_runs))
        .order_by(runs.c.id)
    ).scalars()
    for run_id in list(candidates):
        lock_run(session.connection(), run_id, exclusive=True)  # batches in flight finish
    run_ids = tuple(
        session.connection()
        .execute(
            update(runs)
            .where(runs.c.broadcast_id == broadcast_id, runs.c.status.in_(open_runs))
            .values(status=RunStatus.CANCELLED, cancelled_at=now)
            .returning(runs.c.id)
        )
        .scalars()
    )
    skipped = 0
    if run_ids:
        d = BroadcastDelivery.__table__
        skipped = (
            session.connection()
            .execute(
                update(d)
                .where(
                    d.c.run_id.in_(run_ids),
                    d.c.status.in_((DeliveryStatus.PENDING, DeliveryStatus.DEFERRED)),
                )
                .values(
                    status=DeliveryStatus.SKIPPED, reason=DeliveryReason.CANCELLED, updated_at=now
                )
            )
            .rowcount
        )
    broadcast.status = BroadcastStatus.CANCELLED
    broadcast.cancelled_at = now
    broadcast.updated_at = now
    session.add(broadcast)
    session.flush()
    session.expire_all()
    return CancelResult(broadcast_id, run_ids, skipped)


def list_broadcasts(*, session: Session, limit: int = 50) -> list[Broadcast]:
    """Broadcasts, newest first."""
    return list(
        session.execute(select(Broadcast).order_by(Broadcast.id.desc()).limit(limit)).scalars()
    )
