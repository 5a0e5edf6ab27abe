"""Odd or hostile webhook input, on PostgreSQL and SQLite: a clear 4xx or a stored text,
never a 500, never a lost STOP, always a reply that parses as TwiML."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from sqlalchemy import select
from sqlmodel import Session
from werkzeug.serving import make_server

from sms_service import create_app
from sms_service.carrier.twiml import twiml_replies
from sms_service.models import (
    Campaign,
    ConsentEvent,
    InboundMessage,
    MessageStatusEvent,
    Signature,
    Subscriber,
)
from tests.factories import inbound_form, make_settings, new_sid, post_signed, text_in

PHONE = "+12025550123"


def rows(app, model):
    with Session(app.extensions["sms_engine"]) as s:
        return list(s.execute(select(model).order_by(model.id)).scalars())


def status_of(app) -> str | None:
    [subscriber] = rows(app, Subscriber) or [None]
    return subscriber.status if subscriber else None


@pytest.mark.parametrize("body", ["STOP\x00", "\x00STOP", "ST\x00OP", "STOP\x1b", "\x07stop\x7f"])
def test_control_characters_are_dropped_and_the_stop_still_stops(client, app, settings, body):
    text_in(client, settings, PHONE, "JOIN")
    response = text_in(client, settings, PHONE, body)
    assert response.status_code == 200
    assert "unsubscribed" in twiml_replies(response.data)[0]
    assert status_of(app) == "opted_out"
    expected = "stop" if body == "\x07stop\x7f" else "STOP"
    assert rows(app, InboundMessage)[-1].body == expected


def test_line_breaks_and_tabs_are_kept(client, app, settings):
    assert text_in(client, settings, PHONE, "line one\r\nline\ttwo\rthree").status_code == 200
    assert rows(app, InboundMessage)[0].body == "line one\nline\ttwo\nthree"


@pytest.mark.parametrize("field", ["MessageSid", "AccountSid"])
def test_an_over_long_identifier_is_400_and_stores_nothing(client, app, settings, field):
    form = inbound_form(PHONE, "STOP")
    form[field] = "SM" + "a" * 63
    if field == "MessageSid":
        form["SmsMessageSid"] = form["SmsSid"] = form[field]
    response = post_signed(client, settings, "/sms/inbound", form)
    assert response.status_code == 400 and field.encode() in response.data
    assert rows(app, InboundMessage) == []


def test_a_sid_with_a_nul_is_400_not_500(client, app, settings):
    form = inbound_form(PHONE, "STOP", MessageSid="SM\x00" + "a" * 32)
    assert post_signed(client, settings, "/sms/inbound", form).status_code == 400


def test_short_fields_are_truncated_and_numbers_bounded(client, app, settings):
    form = inbound_form(PHONE, "JOIN", OptOutType="X" * 40, NumMedia="99999999999")
    assert post_signed(client, settings, "/sms/inbound", form).status_code == 200
    [message] = rows(app, InboundMessage)
    assert message.opt_out_type == "X" * 16 and message.num_media == 10


@pytest.mark.parametrize("num_media", ["²", "-1", "1e3", "", "٣"])
def test_a_non_ascii_or_negative_num_media_counts_as_none(client, app, settings, num_media):
    form = inbound_form(PHONE, "JOIN", NumMedia=num_media)
    assert post_signed(client, settings, "/sms/inbound", form).status_code == 200
    assert rows(app, InboundMessage)[0].num_media == 0


def status_form(sid: str, error_code: str) -> dict[str, str]:
    return {
        "MessageSid": sid, "SmsSid": sid, "MessageStatus": "undelivered",
        "SmsStatus": "undelivered", "To": PHONE, "From": "21333", "ErrorCode": error_code,
        "AccountSid": "AC" + "1" * 32,
    }  # fmt: skip


@pytest.mark.parametrize("code", ["²", "99999999999", "9" * 5000, "30003\x00"])
def test_a_callback_with_an_absurd_error_code_is_recorded_without_it(client, app, settings, code):
    sid = new_sid()
    response = post_signed(client, settings, "/sms/status", status_form(sid, code))
    assert response.status_code == 204
    [event] = rows(app, MessageStatusEvent)
    assert (event.sid, event.status, event.error_code) == (sid, "undelivered", None)
    assert json.loads(event.raw)["ErrorCode"] == code  # what Twilio sent is kept


def test_a_callback_sid_over_64_characters_is_400(client, app, settings):
    response = post_signed(client, settings, "/sms/status", status_form("SM" + "b" * 63, "30003"))
    assert response.status_code == 400 and rows(app, MessageStatusEvent) == []


def add_campaign(app, title: str) -> None:
    with Session(app.extensions["sms_engine"]) as s:
        s.add(Campaign(keyword="HK64", title=title, petition_text="Dear Secretary"))
        s.commit()


def test_replies_are_well_formed_twiml_whatever_the_stored_title(client, app, settings):
    add_campaign(app, "Free\x1b the\x0b 64 \ufffe<&>")  # typed into the CLI, say
    response = text_in(client, settings, PHONE, "SIGN")
    assert response.status_code == 200
    [reply] = twiml_replies(response.data)  # raises if the XML is not well formed
    assert "Free the 64 <&>" in reply


def test_a_name_with_an_escape_character_is_stored_without_it(client, app, settings):
    add_campaign(app, "Release the 64")
    text_in(client, settings, PHONE, "SIGN")
    response = text_in(client, settings, PHONE, "Ada\x1b Lovelace")
    assert response.status_code == 200
    [thanks] = twiml_replies(response.data)
    assert "Ada" in thanks
    [signature] = rows(app, Signature)
    assert signature.name == "Ada Lovelace"
    assert all("\x1b" not in (e.message_body or "") for e in rows(app, ConsentEvent))


# -- the body limit, on a real socket --------------------------------------------------------


@pytest.fixture
def live_app(sqlite_url):
    app = create_app(make_settings(sqlite_url, max_content_length=64 * 1024))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app, server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        app.extensions["sms_engine"].dispose()


def test_a_30_mb_body_is_refused_413_before_it_is_read(live_app):
    app, port = live_app
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        # Announce 30 MB, send only the first bytes: the answer must come without the rest.
        sock.sendall(
            b"POST /sms/inbound HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"X-Twilio-Signature: x\r\nContent-Length: 31457280\r\n\r\nBody=STOP&"
        )
        started = time.monotonic()
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:80]
    assert time.monotonic() - started < 3
    assert rows(app, InboundMessage) == []
