"""POST /sms/status on PostgreSQL and SQLite: signed callbacks, each transition recorded
once, status forward-only whatever the order, carrier verdicts on the number."""

from __future__ import annotations

import threading

import pytest
import redis as redis_client
import requests
from sqlalchemy import select
from sqlmodel import Session
from werkzeug.serving import make_server

from sms_service import broadcasts as svc
from sms_service import create_app
from sms_service.broadcasts.clients import ClientPool
from sms_service.broadcasts.sending import RunSender
from sms_service.carrier.client import close_twilio_client, make_twilio_client
from sms_service.carrier.throttle import Throttle
from sms_service.db import session_scope
from sms_service.devtools.carrier_sim import SimConfig, run_in_thread
from sms_service.models import ConsentEvent, MessageStatusEvent, OutboundMessage, Subscriber
from sms_service.services import outbox
from tests.factories import (
    add_subscribers,
    make_settings,
    new_sid,
    phone,
    post_signed,
    schedule_broadcast,
    sign,
    wait_for,
)
from workers.send import send_message

PHONE = "+12025550123"


def status_form(sid: str, status: str, *, to: str = PHONE, error_code: str = "") -> dict[str, str]:
    """The fields Twilio posts to a StatusCallback (a realistic subset)."""
    form = {
        "SmsSid": sid,
        "SmsStatus": status,
        "MessageStatus": status,
        "To": to,
        "MessageSid": sid,
        "AccountSid": "AC" + "1" * 32,
        "From": "21333",
        "ApiVersion": "2010-04-01",
    }
    if error_code:
        form["ErrorCode"] = error_code
    return form


def callback(client, settings, sid: str, status: str, **kw):
    return post_signed(client, settings, "/sms/status", status_form(sid, status, **kw))


def add_message(app, *, sid: str | None, status: str = "queued", to: str = PHONE) -> int:
    with Session(app.extensions["sms_engine"]) as s:
        m = OutboundMessage(sid=sid, to_number=to, body="Rally at noon", status=status)
        s.add(m)
        s.commit()
        return m.id


def message(app, message_id: int) -> OutboundMessage:
    with Session(app.extensions["sms_engine"]) as s:
        return s.get(OutboundMessage, message_id)


def events(app, sid: str) -> list[tuple[str, int | None]]:
    with Session(app.extensions["sms_engine"]) as s:
        rows = s.execute(
            select(MessageStatusEvent).where(MessageStatusEvent.sid == sid).order_by("id")
        ).scalars()
        return [(e.status, e.error_code) for e in rows]


def consent(app) -> list[ConsentEvent]:
    with Session(app.extensions["sms_engine"]) as s:
        return list(s.execute(select(ConsentEvent).order_by(ConsentEvent.id)).scalars())


def subscriber(app, phone: str = PHONE) -> Subscriber | None:
    with Session(app.extensions["sms_engine"]) as s:
        return s.execute(select(Subscriber).where(Subscriber.phone == phone)).scalar_one_or_none()


def test_missing_signature_is_403(client, app):
    sid = new_sid()
    add_message(app, sid=sid)
    response = client.post("/sms/status", data=status_form(sid, "delivered"))
    assert response.status_code == 403
    assert events(app, sid) == []


def test_bad_signature_is_403(client, app, settings):
    sid = new_sid()
    form = status_form(sid, "sent")
    good = sign(settings, "/sms/status", form)
    form["MessageStatus"] = "delivered"  # tampered after signing
    response = client.post("/sms/status", data=form, headers={"X-Twilio-Signature": good})
    assert response.status_code == 403
    assert events(app, sid) == []


@pytest.mark.parametrize(("sid", "status"), [("", "sent"), ("a new sid", "")])
def test_missing_sid_or_status_is_400(client, settings, sid, status):
    form = status_form(new_sid() if sid == "a new sid" else sid, status)
    assert post_signed(client, settings, "/sms/status", form).status_code == 400


def test_in_order_callbacks_move_the_status_forward(client, app, settings):
    sid = new_sid()
    message_id = add_message(app, sid=sid)
    for status in ("queued", "sent", "delivered"):
        assert callback(client, settings, sid, status).status_code == 204
        assert message(app, message_id).status == status
    assert events(app, sid) == [("queued", None), ("sent", None), ("delivered", None)]


def test_out_of_order_and_repeated_callbacks_record_each_status_once(client, app, settings):
    sid = new_sid()
    message_id = add_message(app, sid=sid)
    for status in ("delivered", "sent", "queued", "sent", "delivered", "sending"):
        assert callback(client, settings, sid, status).status_code == 204
    assert message(app, message_id).status == "delivered"
    assert sorted(events(app, sid)) == [
        ("delivered", None),
        ("queued", None),
        ("sending", None),
        ("sent", None),
    ]


def test_unknown_sid_is_recorded_and_answered(client, app, settings):
    sid = new_sid()
    assert callback(client, settings, sid, "sent").status_code == 204
    assert events(app, sid) == [("sent", None)]


def test_undelivered_keeps_the_error_code(client, app, settings):
    sid = new_sid()
    message_id = add_message(app, sid=sid, status="sent")
    callback(client, settings, sid, "undelivered", error_code="30003")
    stored = message(app, message_id)
    assert (stored.status, stored.error_code) == ("undelivered", 30003)
    assert events(app, sid) == [("undelivered", 30003)]
    assert subscriber(app) is None  # an unreachable handset says nothing about consent


def test_opt_out_code_in_a_callback_opts_the_number_out_once(client, app, settings):
    sid = new_sid()
    add_message(app, sid=sid, status="accepted")
    for _ in range(2):
        assert callback(client, settings, sid, "failed", error_code="21610").status_code == 204
    assert subscriber(app).status == "opted_out"
    [event] = consent(app)
    assert (event.event, event.source, event.phone, event.message_sid) == (
        "opt_out",
        "carrier",
        PHONE,
        sid,
    )
    assert "21610" in event.note and event.program == settings.program_name


def test_opt_out_code_for_an_unknown_sid_uses_the_callback_to_number(client, app, settings):
    callback(client, settings, new_sid(), "failed", error_code="21610", to="+12025550188")
    assert subscriber(app, "+12025550188").status == "opted_out"


def test_blocked_30004_asks_staff_to_review(client, app, settings):
    sid = new_sid()
    add_message(app, sid=sid, status="sent")
    callback(client, settings, sid, "undelivered", error_code="30004")
    [event] = consent(app)
    assert (event.event, event.source, event.message_sid) == ("possible_opt_out", "carrier", sid)
    assert event.review_by is not None
    assert subscriber(app) is None


@pytest.mark.parametrize("code", ["30005", "30006"])
def test_landline_or_unknown_handset_marks_the_number_invalid(client, app, settings, code):
    sid = new_sid()
    add_message(app, sid=sid, status="sent")
    callback(client, settings, sid, "undelivered", error_code=code)
    assert subscriber(app).status == "invalid"
    assert consent(app) == []


# -- callbacks posted by the carrier simulator to the app on a real port -------------------


@pytest.fixture
def live(database_url):
    """The app served on a free loopback port, PUBLIC_BASE_URL matching it, and a carrier
    simulator whose signed status callbacks reach ``/sms/status``."""
    holder = {}
    server = make_server(
        "127.0.0.1", 0, lambda env, start: holder["app"](env, start), threaded=True
    )
    base = f"http://127.0.0.1:{server.server_port}"
    settings = make_settings(database_url, public_base_url=base)
    sim = run_in_thread(SimConfig.from_settings(settings, port=0, latency_ms=20))
    settings = make_settings(database_url, public_base_url=base, twilio_api_base_url=sim.url)
    app = holder["app"] = create_app(settings)
    thread = threading.Thread(target=server.serve_forever, name="live-app", daemon=True)
    thread.start()
    try:
        yield app, settings, sim
    finally:
        sim.stop()
        server.shutdown()
        server.server_close()
        thread.join()
        app.extensions["sms_engine"].dispose()


def send_via_job(app, settings, to: str = PHONE) -> int:
    engine = app.extensions["sms_engine"]
    with session_scope(engine) as session:
        message_id = outbox.create_outbound_message(
            session, settings=settings, to=to, body="Rally at noon", kind="broadcast"
        ).id
    client = make_twilio_client(settings)
    try:
        send_message(
            engine=engine, client=client, settings=settings, outbound_message_id=message_id
        )
    finally:
        close_twilio_client(client)
    return message_id


def test_simulator_callbacks_record_queued_sent_delivered_once_each(live):
    app, settings, _ = live
    message_id = send_via_job(app, settings)
    wait_for(lambda: message(app, message_id).status == "delivered")
    sid = message(app, message_id).sid
    assert events(app, sid) == [("queued", None), ("sent", None), ("delivered", None)]


def test_simulator_delivery_error_reaches_the_consent_log(live):
    app, settings, sim = live
    requests.post(
        f"{sim.url}/sim/outcomes",
        json={"number": PHONE, "status": "failed", "error_code": 21610},
        timeout=5,
    ).raise_for_status()
    message_id = send_via_job(app, settings)
    wait_for(lambda: message(app, message_id).status == "failed")
    assert message(app, message_id).error_code == 21610
    assert subscriber(app).status == "opted_out"
    assert [(e.event, e.source) for e in consent(app)] == [("opt_out", "carrier")]


def test_broadcast_progress_counts_what_the_carrier_reports(live):
    """A broadcast sent through the simulator: its signed callbacks reach /sms/status and
    the organiser's progress shows delivered and undelivered."""
    app, settings, sim = live
    settings = settings.model_copy(update={"quiet_hours": "off", "sender_mps": 0})
    engine = app.extensions["sms_engine"]
    add_subscribers(engine, 5)
    requests.post(f"{sim.url}/sim/outcomes", json={"number": phone(3), "status": "undelivered"},
                  timeout=5).raise_for_status()  # fmt: skip
    broadcast_id, run = schedule_broadcast(engine, body="Rally at noon")
    run_id = run.id
    with session_scope(engine) as session:
        svc.begin_run(session=session, run_id=run_id)
    pool = ClientPool(lambda: make_twilio_client(settings, timeout=10), 5)
    try:
        throttle = Throttle(redis_client.Redis.from_url(settings.redis_url), rate=0)
        sender_ = RunSender(engine=engine, settings=settings, pool=pool, throttle=throttle)
        assert sender_.send_run(run_id).sent == 5
    finally:
        pool.close()

    def progress():
        with session_scope(engine) as session:
            return svc.broadcast_progress(session=session, broadcast_id=broadcast_id).runs[0]

    wait_for(lambda: progress().delivered + progress().undelivered == 5, timeout=10)
    assert (progress().delivered, progress().undelivered) == (4, 1)
    assert progress().counts["sent"] == 5
