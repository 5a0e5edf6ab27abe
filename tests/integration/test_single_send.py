"""The single-send pipeline as its callers use it: enqueue_single_send in the caller's
transaction, the RQ job on a real Redis through the shared throttle, the broadcasts'
lease, consent at the last moment, and the sweeper putting back a job Redis never got."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus
from sqlalchemy import select
from sqlmodel import Session

from config import Settings
from sms_service.carrier.single_send import enqueue_single_send, send_job_id
from sms_service.carrier.throttle import DEFAULT_KEY, Throttle
from sms_service.db import make_engine, session_scope
from sms_service.devtools.carrier_sim import SimHandle
from sms_service.errors import SendInFlight
from sms_service.models import MessageKind, OutboundMessage, Subscriber, SubscriberStatus, utcnow
from tests import redis_db
from workers.broadcast_worker import sweep
from workers.send import send_message

PHONE = "+12025550123"


@pytest.fixture
def engine(settings: Settings):
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def cfg(settings: Settings, sim: SimHandle) -> Settings:
    """The test settings pointed at the simulator and this run's Redis, no callbacks."""
    values = settings.model_dump() | {"twilio_api_base_url": sim.url, "public_base_url": None}
    return Settings(**(values | {"redis_url": redis_db.redis_url()}))


def queued(redis_connection) -> list[str]:
    return Queue("default", connection=redis_connection).job_ids


def sent_to(sim: SimHandle, to: str = PHONE) -> list[dict]:
    return requests.get(f"{sim.url}/sim/messages", params={"to": to}, timeout=5).json()["messages"]


def load(engine, message_id: int) -> OutboundMessage:
    with Session(engine) as session:
        return session.get(OutboundMessage, message_id)


def add_subscriber(engine, status: str, phone: str = PHONE) -> None:
    with session_scope(engine) as session:
        session.add(Subscriber(phone=phone, status=status))


def test_the_job_is_enqueued_when_the_callers_transaction_commits(engine, cfg, redis_connection):
    with session_scope(engine) as session:
        message = enqueue_single_send(
            session, settings=cfg, to=PHONE, body="Reply YES to confirm", kind=MessageKind.SYSTEM
        )
        assert queued(redis_connection) == []  # nothing before the commit
    assert queued(redis_connection) == [send_job_id(message.id)]
    job = Job.fetch(send_job_id(message.id), connection=redis_connection)
    assert (job.func_name, job.args) == ("workers.send.send_outbound_message", (message.id,))
    stored = load(engine, message.id)
    assert (stored.status, stored.kind, stored.to_number) == ("pending", "system", PHONE)


def test_a_rolled_back_transaction_leaves_no_text_and_no_job(engine, cfg, redis_connection):
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        enqueue_single_send(session, settings=cfg, to=PHONE, body="x", kind=MessageKind.SYSTEM)
        raise RuntimeError("the caller's change failed")
    with session_scope(engine) as session:  # a later commit enqueues nothing left over
        assert session.execute(select(OutboundMessage)).all() == []
    assert queued(redis_connection) == []


def test_the_job_sends_once_through_the_shared_throttle(
    engine, cfg, sim, redis_connection, worker_env
):
    worker_env(sim.url, SENDER_MPS="0.1", REDIS_URL=cfg.redis_url)  # ten seconds a segment
    with session_scope(engine) as session:
        message = enqueue_single_send(
            session, settings=cfg, to=PHONE, body="Thanks for signing", kind=MessageKind.SYSTEM
        )
    SimpleWorker([Queue("default", connection=redis_connection)], connection=redis_connection).work(
        burst=True
    )
    job = Job.fetch(send_job_id(message.id), connection=redis_connection)
    assert (job.get_status(), job.return_value()) == (JobStatus.FINISHED, "accepted")
    [seen] = sent_to(sim)
    assert load(engine, message.id).sid == seen["sid"]
    # The job took its segment from the key every broadcast sender uses: the next slot on
    # it is about ten seconds away.
    assert redis_connection.exists(DEFAULT_KEY)
    assert Throttle(redis_connection, rate=0.1, burst=1).reserve(1) > 5


def test_an_attempt_younger_than_the_lease_is_left_to_its_worker(engine, cfg, sim, clients):
    with session_scope(engine) as session:
        message = enqueue_single_send(
            session, settings=cfg, to=PHONE, body="x", kind=MessageKind.SYSTEM
        )
        message.status, message.attempted_at = "sending", utcnow() - timedelta(seconds=50)
    assert cfg.broadcast_lease_seconds == 60
    with pytest.raises(SendInFlight):
        send_message(
            engine=engine, client=clients(cfg), settings=cfg, outbound_message_id=message.id
        )
    assert sent_to(sim) == []
    with session_scope(engine) as session:  # now older than the lease: its worker is gone
        session.get(OutboundMessage, message.id).attempted_at = utcnow() - timedelta(seconds=61)
    result = send_message(
        engine=engine, client=clients(cfg), settings=cfg, outbound_message_id=message.id
    )
    assert result == "accepted" and len(sent_to(sim)) == 1  # asked the carrier, then sent


@pytest.mark.parametrize(
    ("kind", "expected"),
    [(MessageKind.OPT_OUT_CONFIRMATION, "accepted"), (MessageKind.CONFIRMATION, "suppressed"),
     (MessageKind.SYSTEM, "suppressed")],
)  # fmt: skip
def test_an_opted_out_number_gets_only_its_opt_out_confirmation(
    engine, cfg, sim, clients, kind, expected
):
    add_subscriber(engine, SubscriberStatus.OPTED_OUT)
    with session_scope(engine) as session:
        message = enqueue_single_send(session, settings=cfg, to=PHONE, body="x", kind=kind)
    result = send_message(
        engine=engine, client=clients(cfg), settings=cfg, outbound_message_id=message.id
    )
    assert result == expected
    assert len(sent_to(sim)) == (1 if expected == "accepted" else 0)


def test_the_sweeper_enqueues_a_text_whose_job_redis_never_got(engine, cfg, redis_connection):
    dead = cfg.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})  # nothing listens
    with session_scope(engine) as session:
        message = enqueue_single_send(
            session, settings=dead, to=PHONE, body="x", kind=MessageKind.SYSTEM
        )
    assert queued(redis_connection) == [] and load(engine, message.id).status == "pending"
    broadcasts = Queue("broadcasts", connection=redis_connection)
    assert sweep(engine=engine, queue=broadcasts).single_sends == 0  # younger than the lease
    later = utcnow() + timedelta(seconds=cfg.broadcast_lease_seconds + 1)
    assert sweep(engine=engine, queue=broadcasts, now=later).single_sends == 1
    assert queued(redis_connection) == [send_job_id(message.id)]
    assert sweep(engine=engine, queue=broadcasts, now=later).single_sends == 0  # queued once
