"""What a broadcast will do before it is sent: reach, frequency-cap skips, quiet-hours
deferrals (and until when), the real cost, how long the send takes.

It asks the sender's own gate (:func:`sms_service.domain.broadcast_gate.decide`) at the
scheduled time, so the forecast and the send follow the same rules. At a million
subscribers it stays two grouped queries (see :func:`audience_groups`): the audience
counted per group of numbers sharing their first ``PREFIX_CHARS`` characters (``+1`` and
the area code in North America) and their stored zone, and those of them at the frequency
cap (:func:`_at_cap`). The gate is asked once per group: a few hundred questions, not a
million. Limits, said on the page as "about": numbers in one area code that straddle two
zones are counted with the zone of the group's first number, texts sent between now and
the scheduled time are not known yet, and anyone who opts out before then will be skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, literal_column, or_, select
from sqlmodel import Session

from sms_service.broadcasts.runs import audience_query
from sms_service.domain import broadcast_gate as gate
from sms_service.domain import segments as seg
from sms_service.models import Broadcast, BroadcastDelivery, BroadcastRun, Subscriber

PREFIX_CHARS = 5
# A delivery is sent after its run started and before the run is finished (finish_run
# closes a run only when none is open); the margin covers clocks of other hosts.
CLOCK_MARGIN = timedelta(hours=1)


@dataclass(frozen=True)
class Group:
    """Audience members sharing a number prefix and a stored zone."""

    prefix: str
    zone: str | None
    count: int
    capped: int  # of them, at the frequency cap
    first_phone: str  # the group's lowest number, asked for the group


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


def _prefix():
    # Literal arguments, so the expression is the one the planner has statistics on
    # (migration 0010: ``st_subscribers_reach``).
    return func.substr(Subscriber.__table__.c.phone, literal_column("1"),
                       literal_column(str(PREFIX_CHARS)))  # fmt: skip


def runs_sending_since(session: Session, since: datetime) -> list[tuple[int, int]]:
    """(id, planned) of the runs that can have sent a text at or after ``since``: started,
    and not finished before then. Each sends a subscriber at most one text, so nobody has
    more texts since ``since`` than there are such runs."""
    r = BroadcastRun.__table__
    return [
        (run_id, planned)
        for run_id, planned in session.execute(
            select(r.c.id, r.c.planned).where(
                r.c.started_at.is_not(None),
                or_(r.c.finished_at.is_(None), r.c.finished_at >= since - CLOCK_MARGIN),
            )
        ).all()
    ]


# Look the cap up per candidate when the candidates are at most this share of the texts
# in the window; else count every subscriber's texts in one pass.
PROBE_SHARE = 0.25


def _at_cap(session: Session, window_start: datetime, cap: int):
    """``SELECT subscriber_id`` of everyone sent ``cap`` or more texts since
    ``window_start``; None when nobody can be (fewer runs than ``cap`` sent since).

    Whoever is at the cap got texts from ``cap`` different runs, so one of them is among
    the ``k - cap + 1`` smallest of the ``k`` runs that can have sent since then. When
    those runs are small, only their recipients are looked up, each with its own count
    (``ix_broadcast_deliveries_sent``); otherwise every texted subscriber is counted."""
    runs = sorted(runs_sending_since(session, window_start), key=lambda run: run[1])
    if len(runs) < cap:
        return None
    d = BroadcastDelivery.__table__
    recent = [d.c.sent_at.is_not(None), d.c.sent_at >= window_start]
    smallest = runs[: len(runs) - cap + 1]
    if sum(n for _, n in smallest) <= PROBE_SHARE * sum(n for _, n in runs):
        candidate = (
            select(d.c.subscriber_id)
            .where(d.c.run_id.in_([run_id for run_id, _ in smallest]), *recent)
            .group_by(d.c.subscriber_id)
            .subquery()
        )
        other = d.alias("texts")
        texts = (
            select(func.count())
            .where(other.c.subscriber_id == candidate.c.subscriber_id,
                   other.c.sent_at.is_not(None), other.c.sent_at >= window_start)
            .scalar_subquery()
        )  # fmt: skip
        return select(candidate.c.subscriber_id).where(texts >= cap).subquery()
    return (
        select(d.c.subscriber_id)
        .where(*recent)
        .group_by(d.c.subscriber_id)
        .having(func.count() >= cap)
        .subquery()
    )


def audience_groups(
    *, session: Session, broadcast: Broadcast, window_start: datetime, cap: int
) -> list[Group]:
    """The broadcast's audience per (prefix, zone), with how many of each group were sent
    ``cap`` or more texts since ``window_start`` (none when ``cap`` is 0; see
    :func:`_at_cap` for how they are found)."""
    s = Subscriber.__table__
    prefix = _prefix()
    audience = audience_query(broadcast)
    rows = session.execute(
        audience.with_only_columns(prefix, s.c.timezone, func.count(), func.min(s.c.phone))
        .group_by(prefix, s.c.timezone)
    ).all()  # fmt: skip
    capped: dict[tuple[str, str | None], int] = {}
    at_cap = _at_cap(session, window_start, cap) if cap else None
    if at_cap is not None:
        capped_rows = session.execute(
            audience.join(at_cap, at_cap.c.subscriber_id == s.c.id)
            .with_only_columns(prefix, s.c.timezone, func.count())
            .group_by(prefix, s.c.timezone)
        ).all()  # fmt: skip
        capped = {(p, z): n for p, z, n in capped_rows}
    return [
        Group(p, z, n, capped.get((p, z), 0), first) for p, z, n, first in rows
    ]  # fmt: skip


def forecast(
    *,
    session: Session,
    broadcast: Broadcast,
    send_at: datetime,
    rules: gate.Rules,
    cost_per_segment: float,
    segments_per_second: float,
    groups: list[Group] | None = None,
) -> Forecast:
    """Forecast ``broadcast`` (saved or not: only its audience and body are read);
    ``groups`` from :func:`audience_groups` when the caller has them already."""
    if groups is None:
        groups = audience_groups(
            session=session, broadcast=broadcast, window_start=send_at - gate.CAP_WINDOW,
            cap=rules.cap,
        )  # fmt: skip
    return forecast_groups(
        groups, body=broadcast.body, send_at=send_at, rules=rules,
        cost_per_segment=cost_per_segment, segments_per_second=segments_per_second,
    )  # fmt: skip


def forecast_groups(
    groups: list[Group],
    *,
    body: str,
    send_at: datetime,
    rules: gate.Rules,
    cost_per_segment: float,
    segments_per_second: float,
) -> Forecast:
    """The forecast from the audience's groups: the gate asked once per group."""
    total = capped = deferred = unplaceable = 0
    until: datetime | None = None
    for group in groups:
        total += group.count
        capped += group.capped
        left = group.count - group.capped
        if not left:
            continue
        recipient = gate.Recipient(group.first_phone, "subscribed", group.zone, 0)
        verdict = gate.decide(recipient, send_at, rules)
        if verdict.action == "defer":
            deferred += left
            if until is None or verdict.not_before > until:
                until = verdict.not_before
        elif verdict.action == "skip":  # a number that cannot be placed: skipped too
            unplaceable += left
    info = seg.count_segments(body)
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
