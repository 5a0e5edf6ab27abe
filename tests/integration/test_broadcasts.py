"""Broadcasts on PostgreSQL and SQLite, without RQ: audiences, planning, cancel, the batch
sender against the carrier simulator, settling lost attempts, and the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import redis
import requests
from click.testing import CliRunner
from sqlalchemy import select, update

from config import Settings
from sms_service import broadcasts as svc
from sms_service.broadcasts.sending import RunSender
from sms_service.carrier.client import close_twilio_client, make_twilio_client
from sms_service.cli.main import main
from sms_service.db import make_engine, session_scope
from sms_service.devtools.carrier_sim import SimConfig, run_in_thread
from sms_service.domain.audience import parse_audience, read_number_list
from sms_service.errors import BadRequest, NotFound
from sms_service.models import (
    BroadcastDelivery,
    BroadcastNumber,
    BroadcastRun,
    Subscriber,
)
from tests.factories import (
    TEST_ACCOUNT_SID,
    TEST_AUTH_TOKEN,
    add_campaign,
    add_subscribers,
    clear_sim,
    delivery_counts,
    make_run_sender,
    phone,
    runs_of,
    schedule_broadcast,
    sending_settings,
    texts_per_number,
    wait_for,
    zone_at_local_hour,
)
from tests.redis_db import redis_url

SIM_LATENCY_MS = 20  # ms, for conftest's module_sim: as this module always had it


@pytest.fixture
def settings(database_url, module_sim):
    return sending_settings(database_url, module_sim.url)


@pytest.fixture
def sender_for(engine, settings, module_sim):
    """A RunSender factory over the test's engine and the simulator (or ``via`` other
    settings), small batches unless ``tuning`` says otherwise; closes its pools."""
    clear_sim(module_sim.url)
    pools = []
    connection = redis.Redis.from_url(redis_url())

    def build(via: Settings | None = None, **tuning) -> RunSender:
        sender, pool = make_run_sender(
            engine, via or settings, connection, key="test:bcast:throttle", **tuning
        )
        pools.append(pool)
        return sender

    yield build
    for pool in pools:
        pool.close()
    connection.close()


def create(engine, audience="all", **options) -> int:
    return schedule_broadcast(engine, audience, **options)[0]


def start(engine, broadcast_id: int) -> svc.StartedRun:
    run = runs_of(engine, broadcast_id)[-1]
    with session_scope(engine) as session:
        return svc.begin_run(session=session, run_id=run.id)


def planned_ids(engine, run_id: int) -> list[int]:
    d = BroadcastDelivery.__table__
    with engine.connect() as conn:
        return sorted(conn.execute(select(d.c.subscriber_id).where(d.c.run_id == run_id)).scalars())


# -- audiences and planning ------------------------------------------------------------------


def test_each_audience_plans_only_its_subscribed_members(engine):
    everyone = add_subscribers(engine, 6)
    add_subscribers(engine, 2, start=10, status="opted_out", tag="ward3")
    tagged = add_subscribers(engine, 3, start=20, tag="ward3")
    add_campaign(engine, "PARK", [everyone[0], everyone[1]] + tagged[:1])
    stopped = add_subscribers(engine, 1, start=30, status="opted_out")
    add_campaign(engine, "OTHER", stopped)

    started = start(engine, create(engine, "all"))
    assert planned_ids(engine, started.run_id) == sorted(everyone + tagged)
    started = start(engine, create(engine, "tag:ward3"))
    assert planned_ids(engine, started.run_id) == tagged
    started = start(engine, create(engine, "campaign:park"))
    assert planned_ids(engine, started.run_id) == sorted([everyone[0], everyone[1], tagged[0]])
    started = start(engine, create(engine, "campaign:other"))
    assert started.planned == 0 and started.finished
    assert runs_of(engine, started.broadcast_id)[0].status == "sent"


def test_number_list_keeps_bad_lines_and_plans_subscribers_only(engine):
    ids = add_subscribers(engine, 3)
    add_subscribers(engine, 1, start=5, status="opted_out")
    text = f"{phone(0)}\n{phone(1)[2:]}\nnot a number\n{phone(5)}\n{phone(9)}\n{phone(0)}\n"
    numbers = read_number_list(text)
    broadcast_id = create(engine, "file:upload.csv", numbers=numbers)
    with session_scope(engine) as session:
        report = svc.list_report(session=session, broadcast_id=broadcast_id)
        stored = session.execute(
            select(BroadcastNumber.line, BroadcastNumber.phone, BroadcastNumber.error)
            .where(BroadcastNumber.broadcast_id == broadcast_id)
            .order_by(BroadcastNumber.line)
        ).all()
    assert report.valid == 4 and report.not_subscribed == 2
    assert [line for line, _, _ in report.invalid] == [3]
    assert [(line, p) for line, p, _ in stored] == [
        (1, phone(0)), (2, phone(1)), (3, None), (4, phone(5)), (5, phone(9)),
    ]  # fmt: skip
    assert stored[2][2]  # the reason is kept
    started = start(engine, broadcast_id)
    assert planned_ids(engine, started.run_id) == ids[:2]


def test_bad_input_is_refused(engine):
    with session_scope(engine) as session:
        with pytest.raises(NotFound):
            svc.create_broadcast(session=session, body="x", audience=parse_audience(
                "campaign:nope"), timezone="UTC")  # fmt: skip
        with pytest.raises(BadRequest):
            svc.create_broadcast(session=session, body="  ", audience=parse_audience("all"),
                                 timezone="UTC")  # fmt: skip
        with pytest.raises(BadRequest):
            svc.create_broadcast(session=session, body="x", audience=parse_audience("all"),
                                 timezone="Mars/Olympus")  # fmt: skip
        with pytest.raises(BadRequest):
            svc.create_broadcast(session=session, body="x", audience=parse_audience("all"),
                                 timezone="UTC", recurrence="hourly")  # fmt: skip
        with pytest.raises(BadRequest):
            svc.create_broadcast(session=session, body="x", audience=parse_audience("file:x"),
                                 timezone="UTC")  # fmt: skip


def test_starting_twice_plans_once_and_chains_the_next_occurrence(engine):
    add_subscribers(engine, 4)
    first = datetime(2026, 3, 7, 14, 0, tzinfo=UTC)  # 09:00 in New York, before DST
    broadcast_id = create(engine, send_at=first, recurrence="daily")
    started = start(engine, broadcast_id)
    assert started.planned == 4
    # Across the DST change the local time stays 09:00, so UTC moves an hour.
    assert started.next_run.occurrence_at == datetime(2026, 3, 8, 13, 0, tzinfo=UTC)
    with session_scope(engine) as session:
        assert svc.begin_run(session=session, run_id=started.run_id) is None
        again = svc.insert_run(session=session, broadcast_id=broadcast_id,
                               occurrence_at=started.next_run.occurrence_at)  # fmt: skip
        assert again.id == started.next_run.id
        broadcast = svc.get_broadcast(session, broadcast_id)
        assert svc.plan_run(session=session, broadcast=broadcast, run_id=started.run_id,
                            now=first) == 4  # fmt: skip
    assert [r.status for r in runs_of(engine, broadcast_id)] == ["sending", "scheduled"]
    with session_scope(engine) as session:
        assert svc.get_broadcast(session, broadcast_id).status == "sending"


def test_cancel_before_start_and_while_sending(engine):
    add_subscribers(engine, 5)
    waiting = create(engine, send_at=datetime.now(UTC) + timedelta(hours=2))
    with session_scope(engine) as session:
        result = svc.cancel_broadcast(session=session, broadcast_id=waiting)
    assert result.runs and result.skipped == 0
    assert start(engine, waiting) is None
    assert runs_of(engine, waiting)[0].status == "cancelled"

    sending = create(engine)
    started = start(engine, sending)
    with session_scope(engine) as session:
        result = svc.cancel_broadcast(session=session, broadcast_id=sending)
        assert svc.cancel_broadcast(session=session, broadcast_id=sending).already
    assert result.skipped == 5
    assert delivery_counts(engine, started.run_id) == {("skipped", "cancelled"): 5}
    with session_scope(engine) as session:
        assert svc.finish_run(session=session, run_id=started.run_id)
        progress = svc.broadcast_progress(session=session, broadcast_id=sending)
    assert progress.status == "cancelled" and progress.done


def test_estimate_offers_the_gsm_text():
    estimate = svc.estimate_body("Don’t miss it — 6pm", 1000, 0.0083)
    assert estimate.encoding == "UCS-2" and estimate.segments == 1
    assert estimate.ucs2_warning and "’" in estimate.ucs2_warning
    assert estimate.gsm_safe_body == "Don't miss it - 6pm"
    assert str(estimate.cost) == "8.3000"
    assert svc.estimate_body("plain", 10, 0.01).gsm_safe_body is None


def test_local_times_are_read_in_the_organisers_zone():
    assert svc.local_to_utc("2026-07-01T09:00", "America/New_York") == datetime(
        2026, 7, 1, 13, 0, tzinfo=UTC
    )
    assert svc.local_to_utc("2026-07-01T09:00+02:00", "America/New_York").hour == 7
    with pytest.raises(BadRequest):
        svc.local_to_utc("tomorrow", "UTC")


# -- sending in-process ----------------------------------------------------------------------


def test_sender_sends_once_each_and_skips_those_who_stopped(engine, sender_for, module_sim):
    ids = add_subscribers(engine, 60)
    broadcast_id = create(engine)
    started = start(engine, broadcast_id)
    with engine.begin() as conn:  # two opt out after planning, one at the carrier only
        conn.execute(update(Subscriber.__table__).where(Subscriber.id.in_(ids[10:12]))
                     .values(status="opted_out"))  # fmt: skip
    requests.post(
        f"{module_sim.url}/sim/optouts", json={"number": phone(20)}, timeout=5
    ).raise_for_status()
    report = sender_for().send_run(started.run_id)
    assert report.batches == 3  # 60 recipients, 25 a batch
    assert report.finished and report.sent == 57 and report.skipped == 3
    assert delivery_counts(engine, started.run_id) == {
        ("sent", None): 57, ("skipped", "opted_out"): 2, ("skipped", "carrier_opted_out"): 1,
    }  # fmt: skip
    per_number = texts_per_number(module_sim.url)
    assert set(per_number.values()) == {1} and len(per_number) == 57
    assert phone(10) not in per_number and phone(20) not in per_number
    with session_scope(engine) as session:
        assert session.get(Subscriber, ids[20]).status == "opted_out"  # the carrier said so
        progress = svc.broadcast_progress(session=session, broadcast_id=broadcast_id)
    run = progress.runs[0]
    assert progress.status == "sent" and run.status == "sent"
    assert run.counts["sent"] == 57 and run.skipped == {"opted_out": 2, "carrier_opted_out": 1}
    requests.delete(f"{module_sim.url}/sim/optouts", params={"number": phone(20)}, timeout=5)


def test_lost_attempts_are_settled_with_the_carrier_not_resent(
    engine, settings, sender_for, module_sim
):
    ids = add_subscribers(engine, 10)
    broadcast_id = create(engine, body="Vote on Tuesday")
    started = start(engine, broadcast_id)
    crashed_at = datetime.now(UTC) - timedelta(minutes=5)
    d = BroadcastDelivery.__table__
    with engine.begin() as conn:  # a worker claimed six and died mid-batch
        conn.execute(
            update(d).where(d.c.run_id == started.run_id, d.c.subscriber_id.in_(ids[:6]))
            .values(status="sending", attempt_id="dead", attempt_started_at=crashed_at,
                    attempts=1)
        )  # fmt: skip
    client = make_twilio_client(settings)
    try:  # ...after three of its calls reached Twilio
        for i in range(3):
            client.messages.create(to=phone(i), from_="21333", body="Vote on Tuesday")
        client.messages.create(to=phone(3), from_="21333", body="Some other text")
    finally:
        close_twilio_client(client)
    report = sender_for(lease=timedelta(seconds=60), client_timeout=5).send_run(started.run_id)
    assert report.recovered == 6 and report.finished
    per_number = texts_per_number(module_sim.url)
    assert [per_number[phone(i)] for i in range(10)] == [1, 1, 1, 2, 1, 1, 1, 1, 1, 1]
    assert delivery_counts(engine, started.run_id) == {("sent", None): 10}


def test_fresh_claims_are_left_to_their_worker(engine, sender_for, module_sim):
    ids = add_subscribers(engine, 3)
    started = start(engine, create(engine))
    d = BroadcastDelivery.__table__
    with engine.begin() as conn:  # claimed a moment ago by a live worker
        conn.execute(update(d).where(d.c.subscriber_id == ids[0])
                     .values(status="sending", attempt_id="live",
                             attempt_started_at=datetime.now(UTC)))  # fmt: skip
    report = sender_for().send_run(started.run_id)
    assert report.sent == 2 and not report.finished and report.wake_at is not None
    assert phone(0) not in texts_per_number(module_sim.url)
    assert runs_of(engine, started.broadcast_id)[0].status == "sending"


def test_quiet_hours_and_cap_at_send_time(engine, settings, module_sim, sender_for):
    add_subscribers(engine, 2, timezone=zone_at_local_hour(3))  # asleep
    add_subscribers(engine, 2, start=10, timezone=zone_at_local_hour(13))  # awake
    capped = settings.model_copy(
        update={"quiet_hours": "08:00-21:00", "program_max_messages_per_30_days": 1}
    )
    sender = sender_for(capped)
    first = start(engine, create(engine))
    report = sender.send_run(first.run_id)
    assert report.sent == 2 and report.deferred == 2 and not report.finished
    assert report.wake_at is not None and report.wake_at > datetime.now(UTC)
    second = start(engine, create(engine, body="Second alert"))
    report = sender.send_run(second.run_id)
    assert delivery_counts(engine, second.run_id) == {
        ("skipped", "frequency_cap"): 2, ("deferred", "quiet_hours"): 2,
    }  # fmt: skip
    assert set(texts_per_number(module_sim.url)) == {phone(10), phone(11)}


# -- the CLI ---------------------------------------------------------------------------------


def test_cli_create_list_status_cancel(engine, database_url, tmp_path):
    add_subscribers(engine, 3)
    listed = tmp_path / "numbers.txt"
    listed.write_text(f"{phone(0)}\n{phone(1)}\nnope\n", encoding="utf-8")
    env = {
        "DATABASE_URL": database_url, "REDIS_URL": "redis://127.0.0.1:1/0",
        "DEFAULT_TIMEZONE": "America/Chicago", "COST_PER_SEGMENT": "0.01",
    }  # fmt: skip
    runner = CliRunner()
    result = runner.invoke(main, ["broadcast", "create", "--body", "Don’t forget: 6pm",
                                  "--audience", f"file:{listed}", "--at", "2030-01-15T09:30",
                                  "--every", "weekly"], env=env)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "scheduled for 2030-01-15 09:30 CST, then weekly" in result.output
    assert "2 recipients x 1 UCS-2 segment ~ $0.02" in result.output
    assert "line 3: 'nope' left out" in result.output
    assert "GSM-safe text (use --gsm-safe): Don't forget: 6pm" in result.output
    assert "not enqueued" in result.output
    broadcast_id = int(result.output.split()[1])
    with session_scope(engine) as session:
        run = session.execute(select(BroadcastRun)).scalar_one()
    assert run.occurrence_at == datetime(2030, 1, 15, 15, 30, tzinfo=UTC)

    result = runner.invoke(main, ["broadcast", "list"], env=env)
    assert f"{broadcast_id}\tscheduled\t2030-01-15 09:30 CST\tweekly\tlist:" in result.output
    result = runner.invoke(main, ["broadcast", "status", str(broadcast_id), "--json"], env=env)
    data = json.loads(result.output)
    assert data["status"] == "scheduled" and data["runs"][0]["status"] == "scheduled"
    result = runner.invoke(main, ["broadcast", "cancel", str(broadcast_id)], env=env)
    assert "cancelled: 1 run(s) stopped" in result.output
    result = runner.invoke(main, ["broadcast", "status", str(broadcast_id)], env=env)
    assert f"broadcast {broadcast_id}: cancelled" in result.output
    result = runner.invoke(main, ["broadcast", "status", "999"], env=env)
    assert result.exit_code != 0 and "no broadcast 999" in result.output


# -- the worker ``sms-service dev`` runs -----------------------------------------------------


@pytest.mark.slow  # a whole RQ worker with scheduler
def test_dev_worker_runs_in_a_thread_on_fakeredis(sqlite_url, module_sim, monkeypatch):
    import threading

    import fakeredis
    from rq import Queue

    from workers import context
    from workers.broadcast import enqueue_start
    from workers.broadcast_worker import start_worker

    clear_sim(module_sim.url)
    for name, value in dict(
        DATABASE_URL=sqlite_url, TWILIO_API_BASE_URL=module_sim.url,
        TWILIO_ACCOUNT_SID=TEST_ACCOUNT_SID, TWILIO_AUTH_TOKEN=TEST_AUTH_TOKEN,
        QUIET_HOURS="off", SENDER_MPS="50", PUBLIC_BASE_URL="",
    ).items():  # fmt: skip
        monkeypatch.setenv(name, value)
    context.reset()
    engine = make_engine(sqlite_url)
    add_subscribers(engine, 20)
    soon = datetime.now(UTC) + timedelta(seconds=1)
    broadcast_id = create(engine, send_at=soon)
    connection = fakeredis.FakeRedis()
    enqueue_start(Queue("broadcasts", connection=connection), runs_of(engine, broadcast_id)[0])
    stop = threading.Event()
    thread = threading.Thread(
        target=start_worker, kwargs=dict(connection=connection, fork=False, stop_event=stop)
    )
    thread.start()
    try:
        wait_for(
            lambda: sum(texts_per_number(module_sim.url).values()) == 20, timeout=20, what="20"
        )
        wait_for(lambda: runs_of(engine, broadcast_id)[0].status == "sent", timeout=10)
    finally:
        stop.set()
        thread.join(10)
        engine.dispose()
        context.reset()
    assert not thread.is_alive()


def test_a_carrier_that_keeps_refusing_fails_the_delivery_after_max_attempts(
    engine, settings, sender_for
):
    add_subscribers(engine, 3)
    started = start(engine, create(engine))
    failing = run_in_thread(SimConfig.from_settings(settings, port=0, error_rate=1.0,
                                                    callbacks="none"))  # fmt: skip
    try:
        refused = settings.model_copy(update={"twilio_api_base_url": failing.url})
        sender = sender_for(refused, max_attempts=2, retry_after=timedelta(0))
        first = sender.send_run(started.run_id)
        assert first.deferred == 3 and first.sent == 0 and not first.finished
        assert delivery_counts(engine, started.run_id) == {("deferred", "retry"): 3}
        second = sender.send_run(started.run_id)  # the second refusal is the last
        assert second.failed == 3 and second.finished
    finally:
        failing.stop()
    assert delivery_counts(engine, started.run_id) == {("failed", "retries_exhausted"): 3}
    assert runs_of(engine, started.broadcast_id)[0].status == "sent"
