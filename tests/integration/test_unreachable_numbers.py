"""A number the short code cannot reach (a UK mobile, from a US short code) is refused at
sign-up with a reply that says why, and left out of broadcasts with reason ``unreachable``;
on PostgreSQL and SQLite."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import redis
from sqlalchemy import insert, select
from sqlmodel import Session

from sms_service import broadcasts as svc
from sms_service.broadcasts.clients import ClientPool
from sms_service.broadcasts.sending import RunSender
from sms_service.broadcasts.tuning import Tuning
from sms_service.carrier.client import make_twilio_client
from sms_service.carrier.throttle import Throttle
from sms_service.db import make_engine, session_scope
from sms_service.models import Campaign, ConsentEvent, InboundMessage, Signature, Subscriber, utcnow
from tests.factories import (
    add_subscribers,
    clear_sim,
    delivery_counts,
    make_settings,
    runs_of,
    schedule_broadcast,
    sending_settings,
    text_in,
    texts_per_number,
)
from tests.redis_db import redis_url

UK = "+447400123456"
US = "+12025550123"


def replies(response) -> list[str]:
    return [m.text or "" for m in ET.fromstring(response.data).findall("Message")]


def rows(app, model):
    with Session(app.extensions["sms_engine"]) as s:
        return list(s.execute(select(model)).scalars())


@pytest.mark.parametrize("word", ["JOIN", "SIGN", "START"])
def test_a_uk_number_cannot_sign_up_to_a_us_short_code(client, app, settings, word):
    with Session(app.extensions["sms_engine"]) as s:
        s.add(Campaign(keyword="HK64", title="Release the 64", petition_text="Dear Secretary"))
        s.commit()
    response = text_in(client, settings, UK, word)
    assert response.status_code == 200
    assert replies(response) == [
        "Rights Alerts: sorry, texts from short code 21333 reach only numbers in Canada or "
        "the US, not the UK, so we cannot sign you up. Nothing was recorded."
    ]
    assert rows(app, Subscriber) == [] and rows(app, Signature) == []
    assert rows(app, ConsentEvent) == []
    [stored] = rows(app, InboundMessage)  # the text itself is never lost
    assert stored.intent == "unreachable" and stored.body == word

    assert "Msg & data rates" in replies(text_in(client, settings, US, word))[0]


def test_help_and_stop_from_an_unreachable_number_are_answered_as_usual(client, app, settings):
    assert "help@rights.example" in replies(text_in(client, settings, UK, "HELP"))[0]
    text_in(client, settings, UK, "STOP")
    assert [e.event for e in rows(app, ConsentEvent)][-1] == "opt_out"  # a STOP always counts


def test_a_long_number_sender_is_not_limited(database_url):
    from sms_service import create_app

    app = create_app(make_settings(database_url, twilio_from="+12025550100"))
    try:
        response = text_in(app.test_client(), app.config["SETTINGS"], UK, "JOIN")
        assert "Msg & data rates" in replies(response)[0]
        assert [s.status for s in rows(app, Subscriber)] == ["subscribed"]
    finally:
        app.extensions["sms_engine"].dispose()


def test_broadcasts_skip_numbers_the_short_code_cannot_reach(database_url, module_sim):
    settings = sending_settings(database_url, module_sim.url)
    engine = make_engine(database_url)
    connection = redis.Redis.from_url(redis_url())
    pool = ClientPool(lambda: make_twilio_client(settings, timeout=10), 4)
    try:
        clear_sim(module_sim.url)
        add_subscribers(engine, 3)
        now = utcnow()
        with engine.begin() as conn:  # subscribed before the rule existed
            conn.execute(insert(Subscriber.__table__), [
                dict(phone=UK, status="subscribed", created_at=now, updated_at=now),
            ])  # fmt: skip
        broadcast_id, _ = schedule_broadcast(engine, "all")
        run = runs_of(engine, broadcast_id)[-1]
        with session_scope(engine) as session:
            started = svc.begin_run(session=session, run_id=run.id)
        throttle = Throttle(connection, rate=0, key="test:reach:throttle")
        sender = RunSender(engine=engine, settings=settings, pool=pool, throttle=throttle,
                           tuning=Tuning(chunk=25, concurrency=4))  # fmt: skip
        report = sender.send_run(started.run_id)
        assert report.finished and report.sent == 3 and report.skipped == 1
        assert delivery_counts(engine, started.run_id) == {
            ("sent", None): 3, ("skipped", "unreachable"): 1,
        }  # fmt: skip
        assert UK not in texts_per_number(module_sim.url)
        with session_scope(engine) as session:
            progress = svc.broadcast_progress(session=session, broadcast_id=broadcast_id)
        assert progress.runs[0].skipped == {"unreachable": 1}
    finally:
        pool.close()
        connection.close()
        engine.dispose()
