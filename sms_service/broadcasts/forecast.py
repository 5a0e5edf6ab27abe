"""What a broadcast will do before it is sent: reach, frequency-cap skips, quiet-hours
deferrals (and until when), the real cost, how long the send takes.

It asks the sender's own gate (:func:`sms_service.domain.broadcast_gate.decide`) at the
scheduled time, so the forecast and the send follow the same rules. To stay one grouped
query at a million subscribers it asks once per group of numbers sharing their first
``PREFIX_CHARS`` characters (``+1`` and the area code in North America), their stored
zone and whether they are at the cap: a few hundred questions, not a million. Limits,
said on the page as "about": numbers in one area code that straddle two zones are counted
with the zone of the group's first number, texts sent between now and the scheduled time
are not known yet, and anyone who opts out before then will be skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlmodel import Session

from sms_service.broadcasts.runs import audience_query
from sms_service.domain import broadcast_gate as gate
from sms_service.domain import segments as seg
from sms_service.models import Broadcast, BroadcastDelivery, Subscriber

PREFIX_CHARS = 5


@dataclass(frozen=True)
class Forecast:
    """The numbers a broadcast is expected to come to at ``send_at``."""

    send_at: datetime
    audience: int
    capped: int
    unplaceable: int
    deferred: int
    deferred_until: datetime | None  # the latest time a deferred text waits for
    sends: int  # audience less skips (deferred texts go later, and still cost)
    segments: int
    cost: Decimal
    seconds: float  # at SENDER_MPS

    @property
    def now_sends(self) -> int:
        """Texts sent at the scheduled time itself."""
        return self.sends - self.deferred


def forecast(
    *,
    session: Session,
    broadcast: Broadcast,
    send_at: datetime,
    rules: gate.Rules,
    cost_per_segment: float,
    segments_per_second: float,
) -> Forecast:
    """Forecast ``broadcast`` (saved or not: only its audience and body are read)."""
    d = BroadcastDelivery.__table__
    s = Subscriber.__table__
    audience = audience_query(broadcast).subquery()
    recent = (
        select(d.c.subscriber_id, func.count().label("n"))
        .where(d.c.sent_at.is_not(None), d.c.sent_at >= send_at - gate.CAP_WINDOW)
        .group_by(d.c.subscriber_id)
        .subquery()
    )
    at_cap = (func.coalesce(recent.c.n, 0) >= rules.cap) if rules.cap else (s.c.id < 0)
    prefix = func.substr(s.c.phone, 1, PREFIX_CHARS)
    groups = session.execute(
        select(prefix, s.c.timezone, at_cap, func.count(), func.min(s.c.phone))
        .select_from(audience.join(s, s.c.id == audience.c.id))
        .outerjoin(recent, recent.c.subscriber_id == s.c.id)
        .group_by(prefix, s.c.timezone, at_cap)
    ).all()
    total = capped = deferred = unplaceable = 0
    until: datetime | None = None
    for _prefix, zone, is_capped, count, phone in groups:
        total += count
        if is_capped:
            capped += count
            continue
        verdict = gate.decide(gate.Recipient(phone, "subscribed", zone, 0), send_at, rules)
        if verdict.action == "defer":
            deferred += count
            if until is None or verdict.not_before > until:
                until = verdict.not_before
        elif verdict.action == "skip":  # a number that cannot be placed: skipped too
            unplaceable += count
    info = seg.count_segments(broadcast.body)
    sends = total - capped - unplaceable
    return Forecast(
        send_at=send_at,
        audience=total,
        capped=capped,
        unplaceable=unplaceable,
        deferred=deferred,
        deferred_until=until,
        sends=sends,
        segments=info.segments,
        cost=seg.estimate_cost(info.segments, sends, cost_per_segment),
        seconds=sends * info.segments / segments_per_second if segments_per_second else 0.0,
    )
