"""The composer's forecast against the exact path: every audience member put to the
sender's gate with the texts they were really sent in the cap's window."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from sms_service.broadcasts import forecast as fc
from sms_service.broadcasts.runs import audience_query
from sms_service.db import session_scope
from sms_service.domain import broadcast_gate as gate
from sms_service.models import (
    AudienceKind,
    Broadcast,
    BroadcastDelivery,
    Subscriber,
    SubscriberTag,
)
from tests.factories import add_subscribers, sent_runs, zone_at_local_hour


def add_numbers(engine, numbers: list[str], *, timezone=None, tag=None) -> list[int]:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        ids = list(conn.execute(insert(Subscriber.__table__).returning(Subscriber.__table__.c.id),
                                [dict(phone=n, status="subscribed", timezone=timezone,
                                      created_at=now, updated_at=now) for n in numbers]
                                ).scalars())  # fmt: skip
        if tag:
            conn.execute(insert(SubscriberTag.__table__),
                         [dict(subscriber_id=i, tag=tag) for i in ids])  # fmt: skip
    return ids


def exact(engine, broadcast: Broadcast, send_at: datetime, rules: gate.Rules) -> dict:
    """Each member's own verdict, with their own count of texts in the window."""
    s, d = Subscriber.__table__, BroadcastDelivery.__table__
    with engine.connect() as conn:
        members = conn.execute(
            audience_query(broadcast).with_only_columns(s.c.id, s.c.phone, s.c.timezone)
        ).all()
        sent = conn.execute(select(d.c.subscriber_id, d.c.sent_at)
                            .where(d.c.sent_at.is_not(None))).all()  # fmt: skip
    since = send_at - gate.CAP_WINDOW
    tally = dict(audience=0, capped=0, unplaceable=0, deferred=0, deferred_until=None)
    for subscriber_id, phone, zone in members:
        recent = sum(1 for who, at in sent if who == subscriber_id and at >= since)
        verdict = gate.decide(gate.Recipient(phone, "subscribed", zone, recent), send_at, rules)
        tally["audience"] += 1
        if verdict.reason == gate.DeliveryReason.FREQUENCY_CAP:
            tally["capped"] += 1
        elif verdict.action == "skip":
            tally["unplaceable"] += 1
        elif verdict.action == "defer":
            tally["deferred"] += 1
            tally["deferred_until"] = max(filter(None, (tally["deferred_until"],
                                                        verdict.not_before)))  # fmt: skip
    tally["sends"] = tally["audience"] - tally["capped"] - tally["unplaceable"]
    return tally


def forecast_of(engine, broadcast, send_at, rules) -> dict:
    with session_scope(engine) as session:
        plan = fc.forecast(session=session, broadcast=broadcast, send_at=send_at, rules=rules,
                           cost_per_segment=0.01, segments_per_second=10)  # fmt: skip
    fields = ("audience", "capped", "unplaceable", "deferred", "deferred_until", "sends")
    return {name: getattr(plan, name) for name in fields}


@pytest.fixture
def audience(app):
    """Numbers in DC, New York, California, Florida and ones with a stored zone at 3 am,
    some tagged; three earlier runs (two in the window, one before it)."""
    engine = app.extensions["sms_engine"]
    dc = add_subscribers(engine, 6, tag="volunteers")
    ny = add_numbers(engine, [f"+1212555{i:04d}" for i in range(4)])
    ca = add_numbers(engine, [f"+1415555{i:04d}" for i in range(3)], tag="volunteers")
    fl = add_numbers(engine, [f"+1305555{i:04d}" for i in range(3)])
    night = add_numbers(engine, [f"+1202666{i:04d}" for i in range(2)],
                        timezone=zone_at_local_hour(3), tag="volunteers")  # fmt: skip
    sent_runs(engine, [dc[:4] + ny[:2] + ca[:1], dc[:3] + ny[:1] + night[:1]], days_ago=3)
    sent_runs(engine, [dc + ny + ca + fl], days_ago=45)  # outside the 30-day window
    return engine


@pytest.mark.parametrize("kind", ["all", "tag"])
@pytest.mark.parametrize("cap", [0, 1, 2, 3])
@pytest.mark.parametrize("hours_ahead", [0, 7, 30])
@pytest.mark.parametrize("probe_share", [0.0, 1.0])  # count everyone / look up candidates
def test_forecast_matches_every_member_put_to_the_gate(
    app, audience, kind, cap, hours_ahead, probe_share, monkeypatch
):
    monkeypatch.setattr(fc, "PROBE_SHARE", probe_share)
    rules = dataclasses.replace(gate.Rules.from_settings(app.config["SETTINGS"]), cap=cap)
    if rules.window is None:
        rules = dataclasses.replace(rules, window=gate.parse_window("21:00-08:00"))
    broadcast = Broadcast(body="Rally", audience_kind=AudienceKind(kind),
                          audience_value="volunteers" if kind == "tag" else None,
                          send_at=datetime.now(UTC), timezone="UTC")  # fmt: skip
    send_at = datetime.now(UTC) + timedelta(hours=hours_ahead)
    assert forecast_of(audience, broadcast, send_at, rules) == exact(
        audience, broadcast, send_at, rules
    )


def test_the_cap_count_is_skipped_only_when_no_one_can_be_at_the_cap(app, audience, monkeypatch):
    rules = gate.Rules.from_settings(app.config["SETTINGS"])
    broadcast = Broadcast(body="Rally", audience_kind=AudienceKind.ALL, send_at=datetime.now(UTC),
                          timezone="UTC")  # fmt: skip
    now = datetime.now(UTC)
    with session_scope(audience) as session:
        # Two runs sent in the window (the one 45 days ago finished before it).
        assert len(fc.runs_sending_since(session, now - gate.CAP_WINDOW)) == 2
    for cap in (2, 3):
        capped = dataclasses.replace(rules, cap=cap)
        short = forecast_of(audience, broadcast, now, capped)
        monkeypatch.setattr(fc, "runs_sending_since", lambda session, since: [(0, 1)] * 9)
        counted = forecast_of(audience, broadcast, now, capped)
        monkeypatch.undo()
        assert short == counted == exact(audience, broadcast, now, capped)
        assert short["capped"] == (4 if cap == 2 else 0)  # dc[:3] and ny[0] had two


def test_candidates_come_from_the_smallest_runs(app, audience, monkeypatch):
    """Three runs in the window and a cap of 2: whoever is at the cap is in one of the
    two smallest; looking up only their recipients finds the same as counting everyone."""
    engine = audience
    with engine.connect() as conn:
        ids = list(
            conn.execute(
                select(Subscriber.__table__.c.id).order_by(Subscriber.__table__.c.id)
            ).scalars()
        )
    sent_runs(engine, [ids[:1], ids[5:7]], days_ago=1)  # two small runs
    rules = dataclasses.replace(gate.Rules.from_settings(app.config["SETTINGS"]), cap=2)
    broadcast = Broadcast(body="Rally", audience_kind=AudienceKind.ALL, send_at=datetime.now(UTC),
                          timezone="UTC")  # fmt: skip
    now = datetime.now(UTC)
    results = []
    for share in (0.0, 1.0):
        monkeypatch.setattr(fc, "PROBE_SHARE", share)
        results.append(forecast_of(engine, broadcast, now, rules))
    assert results[0] == results[1] == exact(engine, broadcast, now, rules)
    assert results[0]["capped"] == 4  # dc[0:3] and ny[0] (ids[6]); dc[5] has one text
