"""Figures for the console dashboard, aggregated in SQL. Days are UTC days.

A national programme has tens of millions of consent events, and counting a month of
them per page view costs seconds. The consent log is append-only, so a day that is over
does not change: its counts are computed once (one grouped query over the days not yet
counted) and kept in ``console_daily_counts``; only the days still open are counted live,
through the time indexes. A day counts as over ``SETTLED`` after its end, leaving room for
transactions that were still committing at midnight. Known limit: events written later
with a time in a day already counted (an import of old opt-ins with their original
dates) are not added to that day's bar.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Date, cast, func, select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from sms_service.db import dialect_insert
from sms_service.models import Campaign, ConsentEvent, DailyCount, Signature, Subscriber, utcnow

SETTLED = timedelta(hours=2)
CONSENT_SERIES = (("opt_in", "opt-ins"), ("opt_out", "opt-outs"))
DONE = "_done"


def _day(session: Session, column: ColumnElement) -> ColumnElement:
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.timezone("UTC", column), Date)
    return func.date(column)


def _as_date(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


@dataclass(frozen=True)
class Series:
    """One line or bar series: a label and a value per day (zeros filled in)."""

    label: str
    values: tuple[int, ...]


@dataclass(frozen=True)
class Dashboard:
    """Subscriber counts by status, opt-ins and opt-outs per day, signatures per campaign."""

    days: tuple[date, ...]
    by_status: dict[str, int]
    consent: tuple[Series, ...]
    signatures: tuple[Series, ...]


def count_days(session: Session, since: datetime, until: datetime) -> dict[tuple[date, str], int]:
    """Counts per (day, series) of events in [since, until): two grouped queries."""
    counts: dict[tuple[date, str], int] = {}
    day = _day(session, ConsentEvent.occurred_at)
    for d, event, n in session.execute(
        select(day, ConsentEvent.event, func.count())
        .where(ConsentEvent.occurred_at >= since, ConsentEvent.occurred_at < until)
        .where(ConsentEvent.event.in_([e for e, _ in CONSENT_SERIES]))
        .group_by(day, ConsentEvent.event)
    ).all():
        counts[(_as_date(d), event)] = n
    sday = _day(session, Signature.signed_at)
    for d, campaign_id, n in session.execute(
        select(sday, Signature.campaign_id, func.count())
        .where(Signature.signed_at >= since, Signature.signed_at < until)
        .group_by(sday, Signature.campaign_id)
    ).all():
        counts[(_as_date(d), f"sig:{campaign_id}")] = n
    return counts


def _settled_counts(session: Session, span: tuple[date, ...], open_from: date) -> dict:
    """Counts of the span's finished days: kept ones, and the missing ones counted now."""
    finished = [d for d in span if d < open_from]
    if not finished:
        return {}
    kept = {
        (row.day, row.series): row.count
        for row in session.execute(
            select(DailyCount).where(DailyCount.day >= finished[0], DailyCount.day < open_from)
        ).scalars()
    }
    done = {d for d, series in kept if series == DONE}
    missing = [d for d in finished if d not in done]
    if not missing:
        return kept
    fresh = count_days(session, _start(missing[0]), _start(open_from))
    rows = [
        dict(day=d, series=series, count=n) for (d, series), n in fresh.items() if d in set(missing)
    ] + [dict(day=d, series=DONE, count=0) for d in missing]
    # Two pages counting the same day at once write the same rows: the second does nothing.
    session.execute(
        dialect_insert(session)(DailyCount.__table__).values(rows).on_conflict_do_nothing()
    )
    kept.update({(r["day"], r["series"]): r["count"] for r in rows})
    return kept


def dashboard(*, session: Session, days: int = 30, now: datetime | None = None) -> Dashboard:
    """The dashboard's figures for the last ``days`` UTC days (today included)."""
    now = (now or utcnow()).astimezone(UTC)
    today = now.date()
    span = tuple(today - timedelta(days=n) for n in range(days - 1, -1, -1))
    open_from = max((now - SETTLED).date(), span[0])
    counts = _settled_counts(session, span, open_from)
    counts.update(count_days(session, _start(open_from), _start(today + timedelta(days=1))))
    by_status = dict(
        session.execute(select(Subscriber.status, func.count()).group_by(Subscriber.status)).all()
    )
    consent = tuple(
        Series(label, tuple(counts.get((d, event), 0) for d in span))
        for event, label in CONSENT_SERIES
    )
    campaign_ids = sorted({int(s[4:]) for _, s in counts if s.startswith("sig:")})
    names = dict(
        session.execute(
            select(Campaign.id, Campaign.keyword).where(Campaign.id.in_(campaign_ids))
        ).all()
    )
    signatures = tuple(
        Series(names.get(cid, f"#{cid}"), tuple(counts.get((d, f"sig:{cid}"), 0) for d in span))
        for cid in sorted(campaign_ids, key=lambda c: names.get(c, ""))
        if any(counts.get((d, f"sig:{cid}"), 0) for d in span)
    )
    return Dashboard(span, by_status, consent, signatures)
