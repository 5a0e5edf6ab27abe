"""Broadcasts and the supporter's side of consent, on PostgreSQL and SQLite against the
carrier simulator: a number with a possible opt-out under review gets nothing until staff
decide; Spanish speakers get a broadcast's Spanish body."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis
from click.testing import CliRunner
from sqlalchemy import select, update

from sms_service import broadcasts as svc
from sms_service.carrier.client import close_twilio_client, make_twilio_client
from sms_service.cli.main import main
from sms_service.db import session_scope
from sms_service.domain.broadcast_gate import DeliveryReason
from sms_service.errors import BadRequest
from sms_service.models import Broadcast, BroadcastDelivery, Subscriber
from sms_service.program import program_from
from sms_service.services.consent import resolve_review
from sms_service.services.inbound import InboundSms, receive
from sms_service.services.reviews import phones_under_review
from tests.factories import (
    add_subscribers,
    clear_sim,
    delivery_counts,
    make_run_sender,
    phone,
    runs_of,
    schedule_broadcast,
    sending_settings,
    sim_messages,
)
from tests.redis_db import redis_url

SIM_LATENCY_MS = 5  # ms, for conftest's module_sim: as this module always had it


@pytest.fixture
def settings(database_url, module_sim):
    return sending_settings(database_url, module_sim.url)


@pytest.fixture
def send(engine, settings, module_sim):
    """Start the broadcast's latest run (unless ``started``) and send it all; the run id."""
    connection = redis.Redis.from_url(redis_url())
    sender, pool = make_run_sender(engine, settings, connection, key="test:review:throttle")

    def run(broadcast_id: int, *, started: bool = False) -> int:
        clear_sim(module_sim.url)  # what the simulator then holds is this run's texts
        run_id = runs_of(engine, broadcast_id)[-1].id
        if not started:
            with session_scope(engine) as session:
                svc.begin_run(session=session, run_id=run_id)
        assert sender.send_run(run_id).finished
        return run_id

    yield run
    pool.close()
    connection.close()


def text_in(engine, settings, number: str, body: str, sid: str) -> str | None:
    """A text from ``number`` through the inbound service, as the webhook applies it."""
    sms = InboundSms(sid, number, "+12025550100", body, datetime.now(UTC))
    return receive(engine, sms, program_from(settings)).reply


def received(sim_url: str) -> dict[str, str]:
    return {m["to"]: m["body"] for m in sim_messages(sim_url)}


def test_a_number_under_review_gets_no_broadcast_until_staff_decide(
    engine, settings, send, module_sim
):
    add_subscribers(engine, 3)
    reply = text_in(engine, settings, phone(1), "stpo", "SMreview1")
    assert reply == "Rights Alerts: Reply STOP to stop all texts."
    with session_scope(engine) as session:
        assert phones_under_review(session, [phone(0), phone(1)]) == {phone(1)}

    run_id = send(schedule_broadcast(engine, body="Rally at 6")[0])
    assert delivery_counts(engine, run_id) == {
        ("sent", None): 2,
        ("skipped", DeliveryReason.OPT_OUT_REVIEW): 1,
    }
    assert set(received(module_sim.url)) == {phone(0), phone(2)}

    with session_scope(engine) as session:  # staff: it was not an opt-out
        resolve_review(session=session, message_sid="SMreview1", opt_out=False, reviewer="amy",
                       program="Rights Alerts")  # fmt: skip
    run_id = send(schedule_broadcast(engine, body="Rally at 7")[0])
    assert delivery_counts(engine, run_id) == {("sent", None): 3}
    assert set(received(module_sim.url)) == {phone(0), phone(1), phone(2)}


def test_a_review_opened_after_planning_still_holds_the_text(engine, settings, send, module_sim):
    add_subscribers(engine, 2)
    broadcast_id = schedule_broadcast(engine, body="Rally at 6")[0]
    run_id = runs_of(engine, broadcast_id)[-1].id
    with session_scope(engine) as session:
        svc.begin_run(session=session, run_id=run_id)  # planned: both numbers
    text_in(engine, settings, phone(0), "S T O P", "SMreview2")
    assert send(broadcast_id, started=True) == run_id
    assert delivery_counts(engine, run_id) == {
        ("sent", None): 1,
        ("skipped", DeliveryReason.OPT_OUT_REVIEW): 1,
    }
    assert set(received(module_sim.url)) == {phone(1)}


def test_spanish_speakers_get_the_spanish_body(engine, settings, send, module_sim):
    ids = add_subscribers(engine, 3)
    assert text_in(engine, settings, phone(2), "AYUDA", "SMayuda").startswith(
        "Rights Alerts: Ayuda en"
    )
    with session_scope(engine) as session:
        assert session.get(Subscriber, ids[2]).language == "es"
    with engine.begin() as conn:  # and one set by an earlier Spanish keyword
        conn.execute(update(Subscriber.__table__).where(Subscriber.id == ids[1])
                     .values(language="es"))  # fmt: skip

    bilingual = schedule_broadcast(engine, body="Rally at 6", body_es="Marcha a las 6")[0]
    send(bilingual)
    assert received(module_sim.url) == {
        phone(0): "Rally at 6", phone(1): "Marcha a las 6", phone(2): "Marcha a las 6",
    }  # fmt: skip
    send(schedule_broadcast(engine, body="English only")[0])  # no Spanish version: the body
    assert set(received(module_sim.url).values()) == {"English only"}


def test_a_lost_spanish_attempt_is_found_at_the_carrier_not_resent(
    engine, settings, send, module_sim
):
    ids = add_subscribers(engine, 2)
    with engine.begin() as conn:
        conn.execute(update(Subscriber.__table__).where(Subscriber.id == ids[0])
                     .values(language="es"))  # fmt: skip
    broadcast_id = schedule_broadcast(engine, body="Rally at 6", body_es="Marcha a las 6")[0]
    run_id = runs_of(engine, broadcast_id)[-1].id
    with session_scope(engine) as session:
        svc.begin_run(session=session, run_id=run_id)
    clear_sim(module_sim.url)
    d = BroadcastDelivery.__table__
    with engine.begin() as conn:  # a worker claimed both and died after one call went out
        conn.execute(
            update(d).where(d.c.run_id == run_id)
            .values(status="sending", attempt_id="dead", attempts=1,
                    attempt_started_at=datetime.now(UTC) - timedelta(minutes=5))
        )  # fmt: skip
    client = make_twilio_client(settings)
    try:
        client.messages.create(to=phone(0), from_="21333", body="Marcha a las 6")
    finally:
        close_twilio_client(client)
    with engine.begin() as conn:  # and the number switched to English meanwhile
        conn.execute(update(Subscriber.__table__).where(Subscriber.id == ids[0])
                     .values(language="en"))  # fmt: skip
    connection = redis.Redis.from_url(redis_url())
    sender, pool = make_run_sender(
        engine, settings, connection, key="test:review:lost", timeout=5, chunk=25,
        concurrency=2, lease=timedelta(seconds=60), client_timeout=5,
    )  # fmt: skip
    try:
        report = sender.send_run(run_id)
    finally:
        pool.close()
        connection.close()
    assert report.recovered == 2 and report.finished
    bodies = [(m["to"], m["body"]) for m in sim_messages(module_sim.url)]
    assert sorted(bodies) == [(phone(0), "Marcha a las 6"), (phone(1), "Rally at 6")]
    assert delivery_counts(engine, run_id) == {("sent", None): 2}


def test_bad_spanish_body_is_refused(engine):
    with pytest.raises(BadRequest) as caught:
        schedule_broadcast(engine, body="Rally", body_es="   ")
    assert "Spanish body" in str(caught.value)
    with pytest.raises(BadRequest) as caught:
        schedule_broadcast(engine, body="Rally", body_es="x" * 1601)
    assert "Spanish body is 1601 characters" in str(caught.value)


def test_cli_create_takes_a_spanish_body(engine, database_url):
    add_subscribers(engine, 2)
    env = {"DATABASE_URL": database_url, "REDIS_URL": "redis://127.0.0.1:1/0"}
    result = CliRunner().invoke(
        main, ["broadcast", "create", "--body", "Rally at 6", "--body-es", "Marcha a las 6",
               "--audience", "all", "--at", "2030-01-15T09:30"], env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Spanish version: 1 GSM-7 segment(s) each" in result.output
    with session_scope(engine) as session:
        stored = session.execute(select(Broadcast)).scalar_one()
    assert (stored.body, stored.body_es) == ("Rally at 6", "Marcha a las 6")
