"""The inbound lane in front of Flask (PostgreSQL and SQLite): which requests it answers
itself, that its answers are the Flask view's to the byte and header, and that whatever it
passes on reaches Flask whole and is answered as before.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

import pytest
from flask import request_started
from sqlalchemy import select
from sqlmodel import Session
from werkzeug.test import Client

from sms_service import create_app
from sms_service.models import InboundMessage
from sms_service.web.inbound_lane import InboundLane
from tests.factories import inbound_form, make_settings, new_sid, sign

PHONE = "+12025550123"
OTHER = "+12025550188"


@pytest.fixture
def app(database_url):
    app = create_app(make_settings(database_url))
    yield app
    app.extensions["sms_engine"].dispose()


def watch(app) -> list[str]:
    """Paths of the requests Flask's own machinery handles for ``app`` from now on."""
    paths: list[str] = []

    def record(sender, **_):
        from flask import request

        paths.append(request.path)

    request_started.connect(record, app, weak=False)
    return paths


@pytest.fixture
def seen_by_flask(app):
    return watch(app)


def stored(app) -> list[InboundMessage]:
    with Session(app.extensions["sms_engine"]) as s:
        return list(s.execute(select(InboundMessage).order_by(InboundMessage.id)).scalars())


def post(app, form, *, signature=None, wsgi=None, **kwargs):
    settings = app.config["SETTINGS"]
    headers = {"X-Twilio-Signature": signature or sign(settings, "/sms/inbound", form)}
    headers.update(kwargs.pop("headers", {}))
    client = Client(wsgi or app)
    return client.post("/sms/inbound", data=form, headers=headers, **kwargs)


def test_the_lane_sits_in_front_of_flask(app):
    assert isinstance(app.wsgi_app, InboundLane)


def test_a_signed_text_is_answered_without_flasks_request_machinery(app, seen_by_flask):
    response = post(app, inbound_form(PHONE, "JOIN"))
    assert response.status_code == 200
    assert b"<Message>" in response.data
    assert seen_by_flask == []
    [message] = stored(app)
    assert message.from_number == PHONE and message.intent == "opt_in"


@pytest.mark.parametrize("body", ["JOIN", "STOP", "HELP", "hello there", "Stop please"])
def test_its_answer_is_the_flask_views_answer(app, seen_by_flask, body):
    """The same text from two new numbers, one through the lane and one straight to
    Flask: same status, same TwiML, same headers (Content-Length and security headers)."""
    lane = post(app, inbound_form(PHONE, body))
    flask = post(app, inbound_form(OTHER, body), wsgi=app.wsgi_app.flask)
    assert seen_by_flask == ["/sms/inbound"]  # the second one only
    assert (lane.status, lane.data) == (flask.status, flask.data)
    # Flask adds "Vary: Cookie" once any hook has looked at the session; nothing in a
    # webhook's answer depends on a cookie.
    assert sorted(lane.headers.items()) == sorted(
        (k, v) for k, v in flask.headers.items() if (k, v) != ("Vary", "Cookie")
    )
    assert [m.intent for m in stored(app)] == [stored(app)[0].intent] * 2


def test_in_production_its_answer_carries_hsts_as_flasks_does(database_url):
    production = make_settings(
        database_url, app_env="production", secret_key="s" * 40,
        twilio_account_sid="AC" + "2" * 32,
    )  # fmt: skip
    app = create_app(production)
    try:
        response = post(app, inbound_form(PHONE, "JOIN"))
        assert response.status_code == 200
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")
        assert response.headers["X-Frame-Options"] == "DENY"
    finally:
        app.extensions["sms_engine"].dispose()


def test_a_retry_is_answered_by_the_lane_with_the_stored_reply(app, seen_by_flask):
    form = inbound_form(PHONE, "JOIN")
    first, again = post(app, form), post(app, form)
    assert again.status_code == 200 and again.data == first.data
    assert len(stored(app)) == 1 and seen_by_flask == []


def test_a_bad_signature_goes_to_flask_which_refuses_it(app, seen_by_flask, caplog):
    form = inbound_form(PHONE, "STOP")
    with caplog.at_level(logging.WARNING):
        response = post(app, form, signature="bm90IGEgc2lnbmF0dXJl")
    assert response.status_code == 403
    assert seen_by_flask == ["/sms/inbound"]
    assert "rejected unsigned or badly signed request" in caplog.text
    assert stored(app) == []


def test_a_form_that_cannot_be_stored_goes_to_flask_whole(app, seen_by_flask):
    """A sid that is not one: the lane reads the body, then hands it to Flask, which reads
    the same body again and answers its own 400."""
    form = inbound_form(PHONE, "JOIN", sid="not a sid at all")
    response = post(app, form)
    assert response.status_code == 400
    assert b"MessageSid must be" in response.data
    assert seen_by_flask == ["/sms/inbound"]
    assert stored(app) == []


def test_a_signed_form_flask_must_read_again_is_still_taken(app, seen_by_flask):
    """What the lane passes on after reading is the very body it read: a signed text whose
    sender is not a phone number gets Flask's 400, and the same body with a good From,
    passed on for another reason (a Content-Type parameter the lane does not know), is
    stored by Flask."""
    form = inbound_form("not-a-number", "JOIN")
    assert post(app, form).status_code == 400
    good = inbound_form(PHONE, "JOIN")
    settings = app.config["SETTINGS"]
    response = Client(app).post(
        "/sms/inbound",
        data=urlencode(good),
        content_type="multipart/x-not-a-form",
        headers={"X-Twilio-Signature": sign(settings, "/sms/inbound", good)},
    )
    assert response.status_code == 403  # Flask parses no form from it, so no signature
    assert seen_by_flask == ["/sms/inbound", "/sms/inbound"]


def test_a_body_that_is_not_utf8_goes_to_flask(app, seen_by_flask):
    response = Client(app).post(
        "/sms/inbound",
        data=b"MessageSid=SM1&Body=%FF\xff",
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": "x"},
    )
    assert response.status_code == 403 and seen_by_flask == ["/sms/inbound"]


def test_a_body_over_the_limit_is_refused_by_flask_unread(database_url):
    app = create_app(make_settings(database_url, max_content_length=1024))
    try:
        seen_by_flask = watch(app)
        form = inbound_form(PHONE, "x" * 1100)
        response = post(app, form)
        assert response.status_code == 413 and seen_by_flask == ["/sms/inbound"]
        assert stored(app) == []
    finally:
        app.extensions["sms_engine"].dispose()


def test_other_paths_and_methods_go_to_flask(app, seen_by_flask):
    client = Client(app)
    assert client.get("/sms/inbound").status_code == 405
    assert client.get("/healthz").status_code == 200
    assert seen_by_flask == ["/sms/inbound", "/healthz"]


def test_a_text_with_a_query_string_is_checked_against_the_signed_url(app, seen_by_flask):
    settings = app.config["SETTINGS"]
    form = inbound_form(PHONE, "JOIN")
    url = settings.public_base_url.rstrip("/") + "/sms/inbound?campaign=hk64"
    from twilio.request_validator import RequestValidator

    good = RequestValidator(settings.twilio_auth_token).compute_signature(url, form)
    response = Client(app).post(
        "/sms/inbound?campaign=hk64", data=form, headers={"X-Twilio-Signature": good}
    )
    assert response.status_code == 200 and seen_by_flask == []


def test_a_failure_inside_is_a_logged_500_with_the_usual_headers(database_url, caplog):
    """The database gone: the lane answers as Flask does outside testing, 500 and the
    traceback in the log with the sender's number masked."""
    app = create_app(make_settings(database_url))
    try:
        app.extensions["sms_engine"] = _broken_engine()
        with caplog.at_level(logging.ERROR):
            response = post(app, inbound_form(PHONE, "JOIN"))
        assert response.status_code == 500
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "Exception on /sms/inbound [POST]" in caplog.text
        assert PHONE not in caplog.text
    finally:
        app.extensions["sms_engine"].dispose()


def test_in_testing_a_failure_inside_propagates_as_flasks_does(database_url):
    app = create_app(make_settings(database_url))
    app.config["TESTING"] = True
    try:
        app.extensions["sms_engine"] = _broken_engine()
        with pytest.raises(Exception, match="could not connect|unable to open|Connection"):
            post(app, inbound_form(PHONE, "JOIN", sid=new_sid()))
    finally:
        app.extensions["sms_engine"].dispose()


def _broken_engine():
    from sms_service.db import make_engine

    # Nothing listens on port 9 of loopback: every connection attempt fails at once.
    return make_engine("postgresql+psycopg://postgres@127.0.0.1:9/none", pool_pre_ping=False)


def test_gunicorns_error_log_still_formats_after_the_app_trims_log_records(app):
    """The app stops records working out their caller and thread; gunicorn's error log
    prints the process id, which they must still carry."""
    from gunicorn.glogging import Logger

    record = logging.getLogger("gunicorn.error").makeRecord(
        "gunicorn.error", logging.INFO, __file__, 1, "Worker exiting (pid: %s)", (42,), None
    )
    line = logging.Formatter(Logger.error_fmt, Logger.datefmt).format(record)
    assert f"[{record.process}] [INFO] Worker exiting (pid: 42)" in line
