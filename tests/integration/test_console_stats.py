"""The dashboard's figures: finished days counted once and kept, open days counted live."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from sms_service.db import session_scope
from sms_service.models import ConsentEvent, DailyCount
from sms_service.services.console_stats import dashboard

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


def add_event(engine, when: datetime, event: str = "opt_in") -> None:
    with engine.begin() as conn:
        conn.execute(insert(ConsentEvent.__table__).values(
            occurred_at=when, phone="+12025550123", event=event, source="sms",
            program="Rights Alerts",
        ))  # fmt: skip


def figures(engine):
    with session_scope(engine) as session:
        return dashboard(session=session, days=7, now=NOW)


def test_days_are_counted_right_and_finished_ones_are_kept(app):
    engine = app.extensions["sms_engine"]
    add_event(engine, NOW - timedelta(days=3))
    add_event(engine, NOW - timedelta(days=3), "opt_out")
    add_event(engine, NOW - timedelta(hours=1))
    first = figures(engine)
    assert first.days[-1] == NOW.date() and len(first.days) == 7
    opt_ins, opt_outs = first.consent
    assert opt_ins.values == (0, 0, 0, 1, 0, 0, 1)
    assert opt_outs.values == (0, 0, 0, 1, 0, 0, 0)
    with engine.connect() as conn:
        kept = conn.execute(select(DailyCount.day, DailyCount.series)).all()
    assert (NOW.date() - timedelta(days=3), "opt_in") in kept
    assert all(day < NOW.date() for day, _ in kept)  # today is never kept
    add_event(engine, NOW - timedelta(minutes=5))  # today: counted live
    add_event(engine, NOW - timedelta(days=3))  # a finished day: kept as counted
    again = figures(engine)
    assert again.consent[0].values == (0, 0, 0, 1, 0, 0, 2)
