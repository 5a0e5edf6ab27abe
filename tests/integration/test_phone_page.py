"""The phone simulator drives the real, signed inbound webhook (PostgreSQL and SQLite)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select
from sqlmodel import Session

from config import ConfigError
from sms_service import create_app
from sms_service.devtools.webapp import create_dev_app
from sms_service.models import ConsentEvent, InboundMessage, OutboundMessage, Subscriber
from tests.factories import TEST_AUTH_TOKEN, make_settings

PHONE = "+12025550123"


def token(client) -> str:
    """The CSRF token the page hands its form and script."""
    page = client.get("/phone").get_data(as_text=True)
    [meta] = re.findall(r'<meta name="csrf-token" content="([^"]+)">', page)
    [field] = re.findall(r'name="csrf_token" value="([^"]+)"', page)
    assert meta == field
    return meta


def send(client, **json):
    """What the page's script posts."""
    return client.post("/phone/send", json=json, headers={"X-CSRFToken": token(client)})


def subscriber(app) -> Subscriber | None:
    with Session(app.extensions["sms_engine"]) as s:
        return s.execute(select(Subscriber).where(Subscriber.phone == PHONE)).scalar_one_or_none()


def test_page_renders_with_the_no_real_phone_note(dev_client):
    response = dev_client.get("/phone")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Phone simulator" in page and "Nothing is sent to a real phone" in page


def test_join_goes_through_the_webhook_and_subscribes(dev_client, dev_app):
    response = send(dev_client, number="(202) 555-0123", body="JOIN")
    assert response.status_code == 200
    data = response.get_json()
    assert data["webhook_status"] == 200
    [reply] = data["replies"]
    assert "Rights Alerts" in reply and "STOP" in reply
    assert data["number"] == PHONE and data["subscriber_status"] == "subscribed"
    assert [(b["direction"], b["body"]) for b in data["conversation"]] == [
        ("in", "JOIN"),
        ("out", reply),
    ]
    assert subscriber(dev_app).status == "subscribed"
    with Session(dev_app.extensions["sms_engine"]) as s:
        [inbound] = s.execute(select(InboundMessage)).scalars()
        [event] = s.execute(select(ConsentEvent)).scalars()
    assert (inbound.from_number, inbound.intent) == (PHONE, "opt_in")
    assert (event.event, event.message_sid) == ("opt_in", inbound.message_sid)


def test_conversation_shows_sent_messages_and_survives_a_reload(dev_client, dev_app):
    send(dev_client, number=PHONE, body="JOIN")
    with Session(dev_app.extensions["sms_engine"]) as s:
        s.add(OutboundMessage(to_number=PHONE, body="Rally at noon <b>today</b>", kind="broadcast"))
        s.commit()
    page = dev_client.get("/phone", query_string={"number": PHONE}).get_data(as_text=True)
    assert "JOIN" in page and "subscribed" in page
    assert "Rally at noon &lt;b&gt;today&lt;/b&gt;" in page and "broadcast · pending" in page


def test_plain_form_post_redirects_back_to_the_conversation(dev_client, dev_app):
    form = {"number": PHONE, "body": "STOP", "csrf_token": token(dev_client)}
    response = dev_client.post("/phone/send", data=form)
    assert response.status_code == 302
    assert "number=%2B12025550123" in response.headers["Location"]
    assert subscriber(dev_app).status == "opted_out"


def test_bad_number_is_400(dev_client):
    response = send(dev_client, number="12", body="JOIN")
    assert response.status_code == 400
    assert "phone number" in response.get_json()["error"]


def test_without_public_base_url_the_request_url_is_signed(sqlite_url):
    app = create_dev_app(make_settings(sqlite_url, public_base_url=None))
    try:
        response = send(app.test_client(), number=PHONE, body="JOIN")
        assert response.get_json()["webhook_status"] == 200
        assert subscriber(app).status == "subscribed"
    finally:
        app.extensions["sms_engine"].dispose()


def test_a_post_without_the_csrf_token_is_refused_and_texts_nothing(dev_client, dev_app):
    assert dev_client.post("/phone/send", json={"number": PHONE, "body": "STOP"}).status_code == 400
    form = {"number": PHONE, "body": "STOP", "csrf_token": "forged"}
    assert dev_client.post("/phone/send", data=form).status_code == 400
    assert subscriber(dev_app) is None


def test_there_is_no_phone_page_in_production(sqlite_url, monkeypatch):
    monkeypatch.setenv("PHONE_SIMULATOR", "1")  # the old way to turn it on does nothing
    settings = make_settings(
        sqlite_url,
        app_env="production",
        twilio_account_sid="AC" + "2" * 32,
        twilio_auth_token=TEST_AUTH_TOKEN,
        secret_key="s" * 40,
    )
    with pytest.raises(ConfigError, match="development tool"):
        create_dev_app(settings)
    app = create_app(settings)
    try:
        client = app.test_client()
        assert client.get("/phone").status_code == 404
        assert client.post("/phone/send", json={"number": PHONE, "body": "STOP"}).status_code == 404
        assert "phone.phone" not in app.view_functions
    finally:
        app.extensions["sms_engine"].dispose()


def test_the_thread_shows_broadcasts_the_carrier_accepted(dev_client, dev_app):
    from sms_service.models import Broadcast, BroadcastDelivery, BroadcastRun, utcnow

    send(dev_client, number=PHONE, body="JOIN")
    now = utcnow()
    with Session(dev_app.extensions["sms_engine"]) as s:
        sub_id = s.execute(select(Subscriber.id).where(Subscriber.phone == PHONE)).scalar_one()
        broadcast = Broadcast(body="Rally at 6pm", audience_kind="all", send_at=now,
                              timezone="UTC", status="sent")  # fmt: skip
        s.add(broadcast)
        s.flush()
        sent = BroadcastRun(broadcast_id=broadcast.id, occurrence_at=now, status="sent",
                            body="Rally at 6pm")  # fmt: skip
        later = BroadcastRun(broadcast_id=broadcast.id, occurrence_at=now.replace(year=2099),
                             status="sending", body="Not yet")  # fmt: skip
        s.add_all([sent, later])
        s.flush()
        s.add_all([
            BroadcastDelivery(run_id=sent.id, subscriber_id=sub_id, status="sent", sid="SM1",
                              sent_at=now),
            BroadcastDelivery(run_id=later.id, subscriber_id=sub_id, status="deferred"),
        ])  # fmt: skip
        broadcast_id = broadcast.id
        s.commit()
    page = dev_client.get(f"/phone?number={PHONE}").get_data(as_text=True)
    assert "Rally at 6pm" in page and f"broadcast {broadcast_id}" in page
    assert "Not yet" not in page  # a deferred delivery has not reached the phone
    bubbles = send(dev_client, number=PHONE, body="HELP").get_json()["conversation"]
    assert [b["body"] for b in bubbles][2] == "Rally at 6pm"  # after JOIN and its reply
