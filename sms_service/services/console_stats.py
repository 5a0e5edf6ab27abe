"""Figures for the console dashboard, aggregated in SQL (one grouped query per chart), so
the page costs the same with a thousand subscribers or millions. Days are UTC days."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import Date, cast, func, select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from sms_service.models import Campaign, ConsentEvent, Signature, Subscriber, utcnow


def _day(session: Session, column: ColumnElement) -> ColumnElement:
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.timezone("UTC", column), Date)
    return func.date(column)


def _as_date(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


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


def dashboard(*, session: Session, days: int = 30, now: datetime | None = None) -> Dashboard:
    """The dashboard's figures for the last ``days`` UTC days (today included)."""
    today = (now or utcnow()).date()
    span = tuple(today - timedelta(days=n) for n in range(days - 1, -1, -1))
    since = datetime.combine(span[0], time.min, tzinfo=(now or utcnow()).tzinfo)
    by_status = dict(
        session.execute(select(Subscriber.status, func.count()).group_by(Subscriber.status)).all()
    )
    day = _day(session, ConsentEvent.occurred_at)
    rows = session.execute(
        select(day, ConsentEvent.event, func.count())
        .where(ConsentEvent.occurred_at >= since, ConsentEvent.event.in_(("opt_in", "opt_out")))
        .group_by(day, ConsentEvent.event)
    ).all()
    consent = tuple(
        Series(label, _fill(span, {_as_date(d): n for d, e, n in rows if e == event}))
        for event, label in (("opt_in", "opt-ins"), ("opt_out", "opt-outs"))
    )
    sday = _day(session, Signature.signed_at)
    srows = session.execute(
        select(Campaign.keyword, sday, func.count())
        .join(Campaign, Campaign.id == Signature.campaign_id)
        .where(Signature.signed_at >= since)
        .group_by(Campaign.keyword, sday)
    ).all()
    per_campaign: dict[str, dict[date, int]] = {}
    for keyword, d, n in srows:
        per_campaign.setdefault(keyword, {})[_as_date(d)] = n
    signatures = tuple(Series(k, _fill(span, v)) for k, v in sorted(per_campaign.items()))
    return Dashboard(span, by_status, consent, signatures)


def _fill(span: tuple[date, ...], counts: dict[date, int]) -> tuple[int, ...]:
    return tuple(counts.get(d, 0) for d in span)
