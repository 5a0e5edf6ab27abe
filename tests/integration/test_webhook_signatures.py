"""Which URL and which fields a Twilio signature must cover (PostgreSQL and SQLite).

A signature Twilio made for another webhook of the same account must never be accepted
here by forging Host or X-Forwarded-Host; X-Forwarded-* count only when TRUSTED_PROXIES
says a proxy is in front; a key posted twice is signed with both values.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlmodel import Session
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from sms_service import create_app
from sms_service.models import InboundMessage
from tests.factories import TEST_AUTH_TOKEN, inbound_form, make_settings

PHONE = "+12025550123"
OTHER_WEBHOOK = "https://other.example/sms/inbound"  # another app on the same Twilio account


def signature(url: str, form) -> str:
    return RequestValidator(TEST_AUTH_TOKEN).compute_signature(url, form)


def stored(app) -> list[InboundMessage]:
    with Session(app.extensions["sms_engine"]) as s:
        return list(s.execute(select(InboundMessage)).scalars())


@pytest.fixture
def make_app(database_url):
    apps = []

    def build(**overrides):
        app = create_app(make_settings(database_url, **overrides))
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["sms_engine"].dispose()


FORGED_HEADERS = {"X-Forwarded-Host": "other.example", "X-Forwarded-Proto": "https"}


def test_a_signature_for_another_webhook_is_refused_with_public_base_url(make_app):
    app = make_app()  # PUBLIC_BASE_URL = https://sms.rights.example
    form = inbound_form(PHONE, "STOP")
    headers = {"X-Twilio-Signature": signature(OTHER_WEBHOOK, form), **FORGED_HEADERS}
    response = app.test_client().post(
        "/sms/inbound", data=form, headers=headers, base_url="https://other.example"
    )
    assert response.status_code == 403 and stored(app) == []


def test_forwarded_headers_are_ignored_unless_proxies_are_trusted(make_app):
    app = make_app(public_base_url=None)  # development: the request URL is what is checked
    form = inbound_form(PHONE, "STOP")
    headers = {"X-Twilio-Signature": signature(OTHER_WEBHOOK, form), **FORGED_HEADERS}
    response = app.test_client().post("/sms/inbound", data=form, headers=headers)
    assert response.status_code == 403 and stored(app) == []


def test_with_one_trusted_proxy_its_forwarded_url_is_the_signed_one(make_app):
    app = make_app(public_base_url=None, trusted_proxies=1)
    form = inbound_form(PHONE, "JOIN")
    headers = {
        "X-Twilio-Signature": signature("https://sms.rights.example/sms/inbound", form),
        "X-Forwarded-Host": "sms.rights.example",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-For": "203.0.113.9",
    }
    response = app.test_client().post("/sms/inbound", data=form, headers=headers)
    assert response.status_code == 200 and len(stored(app)) == 1


def test_a_repeated_key_is_validated_with_every_value(make_app):
    app = make_app()
    form = MultiDict(inbound_form(PHONE, "JOIN"))
    form.add("Extra", "b")
    form.add("Extra", "a")
    url = "https://sms.rights.example/sms/inbound"
    response = app.test_client().post(
        "/sms/inbound", data=form, headers={"X-Twilio-Signature": signature(url, form)}
    )
    assert response.status_code == 200 and len(stored(app)) == 1


def test_a_value_added_to_a_signed_request_breaks_the_signature(make_app):
    app = make_app()
    form = inbound_form(PHONE, "JOIN")
    good = signature("https://sms.rights.example/sms/inbound", form)
    tampered = MultiDict(form)
    tampered.add("Body", "STOP")  # the view reads the first Body; the signature covers both
    response = app.test_client().post(
        "/sms/inbound", data=tampered, headers={"X-Twilio-Signature": good}
    )
    assert response.status_code == 403 and stored(app) == []
