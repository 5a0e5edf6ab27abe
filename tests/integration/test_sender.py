"""Sending through the official twilio client to the carrier simulator over real HTTP:
outcomes classified, recorded, consent applied; the RQ job retried on a real Redis; lost
answers reconciled instead of resent."""

from __future__ import annotations

import threading
import time

import pytest
import requests
from rq import Queue, Retry, SimpleWorker
from rq.job import JobStatus
from sqlalchemy import select
from sqlmodel import Session

from config import Settings
from sms_service.broadcasts.tuning import Tuning
from sms_service.carrier import sender
from sms_service.carrier.single_send import enqueue_send_job
from sms_service.db import make_engine, session_scope
from sms_service.devtools.carrier_sim import SimConfig, SimHandle, run_in_thread
from sms_service.domain.carrier_status import Outcome
from sms_service.errors import SendRetryable
from sms_service.models import ConsentEvent, OutboundMessage, Subscriber, utcnow
from sms_service.services import outbox
from tests.factories import free_port, make_settings
from workers.send import send_message

PHONE = "+12025550123"
INVALID = "+11234567890"  # area code 123 does not exist: Twilio answers 21211


@pytest.fixture
def engine(settings: Settings):
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


def via(settings: Settings, sim: SimHandle, **overrides) -> Settings:
    """``settings`` pointed at the simulator (no public URL unless given: no callbacks)."""
    values = settings.model_dump() | {"twilio_api_base_url": sim.url, "public_base_url": None}
    return Settings(**(values | overrides))


def new_message(engine, settings: Settings, to: str = PHONE, body: str = "Rally at noon", **kw):
    with session_scope(engine) as session:
        return outbox.create_outbound_message(session, settings=settings, to=to, body=body, **kw).id


def load(engine, message_id: int) -> OutboundMessage:
    with Session(engine) as session:
        return session.get(OutboundMessage, message_id)


def subscriber(engine, phone: str = PHONE) -> Subscriber | None:
    with Session(engine) as session:
        return session.execute(
            select(Subscriber).where(Subscriber.phone == phone)
        ).scalar_one_or_none()


def consent_events(engine) -> list[ConsentEvent]:
    with Session(engine) as session:
        return list(session.execute(select(ConsentEvent).order_by(ConsentEvent.id)).scalars())


def sim_messages(sim: SimHandle, to: str = PHONE) -> list[dict]:
    return requests.get(f"{sim.url}/sim/messages", params={"to": to}, timeout=5).json()["messages"]


# -- one API call, classified ------------------------------------------------------------


def test_accepted_send_is_recorded_with_sid_and_segments(engine, settings, sim, clients):
    cfg = via(settings, sim)
    body = "Rally at City Hall at noon. " * 7  # 196 GSM-7 characters: two segments
    message_id = new_message(engine, cfg, body=body, kind="system")
    assert (
        send_message(
            engine=engine, client=clients(cfg), settings=cfg, outbound_message_id=message_id
        )
        == "accepted"
    )
    stored = load(engine, message_id)
    [seen] = sim_messages(sim)
    assert stored.sid == seen["sid"] and stored.sid.startswith("SM")
    assert (stored.status, stored.segments, stored.encoding) == ("queued", 2, "GSM-7")
    assert (stored.from_number, stored.attempts, stored.error_code) == ("21333", 1, None)
    assert stored.sent_at is not None and seen["body"] == body
    # Done means done: running the job again sends nothing.
    assert (
        send_message(
            engine=engine, client=clients(cfg), settings=cfg, outbound_message_id=message_id
        )
        == "done"
    )
    assert len(sim_messages(sim)) == 1


def test_messaging_service_is_preferred_over_from(engine, settings, sim, clients):
    cfg = via(settings, sim, twilio_messaging_service_sid="MG" + "a" * 32)
    message_id = new_message(engine, cfg, body="Café tonight")  # é is GSM-7; ’ would not be
    send_message(engine=engine, client=clients(cfg), settings=cfg, outbound_message_id=message_id)
    stored = load(engine, message_id)
    [seen] = sim_messages(sim)
    assert seen["messaging_service_sid"] == "MG" + "a" * 32
    assert (stored.status, stored.from_number, stored.segments) == ("accepted", None, 1)


def test_21610_opts_the_subscriber_out_with_a_carrier_consent_event(engine, settings, sim, clients):
    requests.post(f"{sim.url}/sim/optouts", json={"number": PHONE}, timeout=5).raise_for_status()
    cfg = via(settings, sim)
    message_id = new_message(engine, cfg, kind="broadcast")
    result = send_message(
        engine=engine, client=clients(cfg), settings=cfg, outbound_message_id=message_id
    )
    assert result == "opted_out"
    stored = load(engine, message_id)
    assert (stored.status, stored.error_code, stored.sid) == ("failed", 21610, None)
    assert subscriber(engine).status == "opted_out"
    [event] = consent_events(engine)
    assert (event.event, event.source, event.phone, event.program) == (
        "opt_out", "carrier", PHONE, "Rights Alerts",
    )  # fmt: skip
    assert "21610" in event.note
    # The next broadcast to the number is not even attempted.
    again = new_message(engine, cfg, kind="broadcast")
    assert (
        send_message(engine=engine, client=clients(cfg), settings=cfg, outbound_message_id=again)
        == "suppressed"
    )
    assert load(engine, again).status == "failed" and len(consent_events(engine)) == 1


def test_21211_marks_the_number_invalid_and_is_not_retried(engine, settings, sim, clients):
    cfg = via(settings, sim)
    message_id = new_message(engine, cfg, to=INVALID)
    assert (
        send_message(
            engine=engine, client=clients(cfg), settings=cfg, outbound_message_id=message_id
        )
        == "invalid_number"
    )
    stored = load(engine, message_id)
    assert (stored.status, stored.error_code) == ("failed", 21211)
    assert subscriber(engine, INVALID).status == "invalid"
    assert (
        send_message(
            engine=engine, client=clients(cfg), settings=cfg, outbound_message_id=message_id
        )
        == "done"
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_429_when_the_carrier_is_busy_is_retryable(settings, start_sim, clients):
    sim = start_sim(max_concurrency=1, latency_ms=3000)  # the first send stays in flight
    cfg = via(settings, sim)
    second = clients(cfg)
    slow = threading.Thread(
        target=sender.send_sms,
        args=(clients(cfg),),
        kwargs={"to": PHONE, "body": "a", "from_": "21333"},
    )  # its own client: one per thread
    slow.start()
    try:
        deadline = time.monotonic() + 5
        while requests.get(f"{sim.url}/sim/stats", timeout=5).json()["in_flight"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        outcome = sender.send_sms(second, to=PHONE, body="b", from_="21333")
    finally:
        slow.join()
    assert outcome.kind is Outcome.RETRYABLE and outcome.should_retry
    assert (outcome.http_status, outcome.error_code) == (429, 20429)


def test_500_is_retryable_and_the_message_waits_for_the_next_attempt(
    engine, settings, start_sim, clients
):
    sim = start_sim(error_rate=1.0)
    cfg = via(settings, sim)
    message_id = new_message(engine, cfg)
    with pytest.raises(SendRetryable):
        send_message(
            engine=engine, client=clients(cfg), settings=cfg, outbound_message_id=message_id
        )
    stored = load(engine, message_id)
    assert (stored.status, stored.error_code, stored.attempts) == ("pending", 20500, 1)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_refused_connection_is_retryable_and_a_timeout_is_unknown(settings, start_sim, clients):
    closed = Settings(
        **(settings.model_dump() | {"twilio_api_base_url": f"http://127.0.0.1:{free_port()}"})
    )
    refused = sender.send_sms(clients(closed), to=PHONE, body="x", from_="21333")
    assert refused.kind is Outcome.RETRYABLE and "ConnectionError" in refused.error_message
    slow = start_sim(latency_ms=1000)
    timed_out = sender.send_sms(
        clients(via(settings, slow), timeout=0.2), to=PHONE, body="x", from_="21333"
    )
    assert timed_out.kind is Outcome.UNKNOWN and timed_out.should_retry


# -- reconciling a lost answer -------------------------------------------------------------


def test_reconcile_finds_what_the_carrier_accepted(settings, start_sim, clients):
    sim = start_sim(latency_ms=600)
    cfg = via(settings, sim)
    since = utcnow()
    lost = sender.send_sms(clients(cfg, timeout=0.2), to=PHONE, body="Vote Tuesday", from_="21333")
    assert lost.kind is Outcome.UNKNOWN
    client = clients(cfg)
    [seen] = sim_messages(sim)
    assert sender.reconcile(client, to=PHONE, body="Vote Tuesday", since=since) == seen["sid"]
    assert sender.reconcile(client, to=PHONE, body="Vote Wednesday", since=since) is None
    assert sender.reconcile(client, to="+12025550188", body="Vote Tuesday", since=since) is None


def test_job_reconciles_a_lost_answer_instead_of_sending_twice(
    engine, settings, start_sim, clients
):
    sim = start_sim(latency_ms=600)
    cfg = via(settings, sim)
    message_id = new_message(engine, cfg)
    with pytest.raises(SendRetryable):
        send_message(
            engine=engine,
            client=clients(cfg, timeout=0.2),
            settings=cfg,
            outbound_message_id=message_id,
        )
    assert load(engine, message_id).status == "unknown"
    assert (
        send_message(
            engine=engine, client=clients(cfg), settings=cfg, outbound_message_id=message_id
        )
        == "accepted"
    )
    [seen] = sim_messages(sim)
    stored = load(engine, message_id)
    assert stored.sid == seen["sid"] and stored.attempts == 2


def test_reconcile_never_takes_another_messages_sid(engine, settings, sim, clients):
    cfg = via(settings, sim)
    first = new_message(engine, cfg, body="Same words")
    send_message(engine=engine, client=clients(cfg), settings=cfg, outbound_message_id=first)
    second = new_message(engine, cfg, body="Same words")
    with session_scope(engine) as session:  # its answer was lost before Twilio saw it
        session.get(OutboundMessage, second).status = "unknown"
    result = send_message(
        engine=engine, client=clients(cfg), settings=cfg, outbound_message_id=second
    )
    assert result == "accepted"
    sids = {m["sid"] for m in sim_messages(sim)}
    assert len(sids) == 2 and sids == {load(engine, first).sid, load(engine, second).sid}


def test_an_attempt_in_flight_is_not_duplicated(engine, settings, sim, clients):
    cfg = via(settings, sim)
    message_id = new_message(engine, cfg)
    with session_scope(engine) as session:
        # a worker that is still waiting for Twilio's answer
        sender.claim_for_sending(session, message_id, lease=Tuning.from_settings(cfg).lease)
    with pytest.raises(SendRetryable):
        send_message(
            engine=engine, client=clients(cfg), settings=cfg, outbound_message_id=message_id
        )
    assert sim_messages(sim) == []


# -- the RQ job on a real Redis ------------------------------------------------------------


def test_rq_job_retries_until_the_carrier_answers(engine, settings, redis_connection, worker_env):
    port = free_port()
    worker_env(f"http://127.0.0.1:{port}")  # nothing listens there yet
    message_id = new_message(engine, make_settings(settings.database_url))
    queue = Queue("default", connection=redis_connection)
    job = enqueue_send_job(queue, message_id, retry=Retry(max=3, interval=1))
    worker = SimpleWorker([queue], connection=redis_connection)

    worker.work(burst=True)
    assert job.get_status(refresh=True) is JobStatus.SCHEDULED
    assert load(engine, message_id).status == "pending"

    sim = run_in_thread(SimConfig.from_settings(settings, port=port))
    try:
        time.sleep(1.1)  # the retry interval
        worker.work(burst=True, with_scheduler=True)
        assert job.get_status(refresh=True) is JobStatus.FINISHED
        assert job.return_value() == "accepted"
        stored = load(engine, message_id)
        [seen] = sim_messages(sim)
    finally:
        sim.stop()
    assert (stored.status, stored.sid, stored.attempts) == ("queued", seen["sid"], 2)


def test_rq_job_does_not_retry_a_permanent_refusal(
    engine, settings, sim, redis_connection, worker_env
):
    worker_env(sim.url)
    message_id = new_message(engine, make_settings(settings.database_url), to=INVALID)
    queue = Queue("default", connection=redis_connection)
    job = enqueue_send_job(queue, message_id, retry=Retry(max=3, interval=1))
    SimpleWorker([queue], connection=redis_connection).work(burst=True)
    assert job.get_status(refresh=True) is JobStatus.FINISHED
    assert job.return_value() == "invalid_number"
    assert load(engine, message_id).attempts == 1
