"""Opt-outs staff record (phone, email, in person, web) and confirm on review: source
admin, and exactly one confirmation text, sent through the single-send path."""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import select
from sqlmodel import Session

from sms_service.carrier.client import close_twilio_client, make_twilio_client
from sms_service.db import make_engine, session_scope
from sms_service.domain.replies import opt_out_confirmation
from sms_service.errors import BadRequest
from sms_service.models import ConsentEvent, OutboundMessage, Subscriber
from sms_service.program import program_from
from sms_service.services.consent import record_opt_out, resolve_review
from tests.factories import clear_sim, make_settings, text_in
from workers.send import send_message

PHONE = "+12025550123"


@pytest.fixture
def settings(database_url, module_sim):
    clear_sim(module_sim.url)
    return make_settings(database_url, twilio_api_base_url=module_sim.url, public_base_url=None)


@pytest.fixture
def engine(settings):
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


def send(engine, settings, message_id: int) -> str:
    client = make_twilio_client(settings)
    try:
        return send_message(engine=engine, client=client, settings=settings,
                       outbound_message_id=message_id)  # fmt: skip
    finally:
        close_twilio_client(client)


def texts_to(module_sim, phone: str = PHONE) -> list[str]:
    answer = requests.get(f"{module_sim.url}/sim/messages", params={"to": phone}, timeout=5).json()
    return [m["body"] for m in answer["messages"]]


def test_a_staff_recorded_opt_out_is_confirmed_once(engine, settings, module_sim):
    with session_scope(engine) as s:
        s.add(Subscriber(phone=PHONE, status="subscribed"))
    with session_scope(engine) as s:
        recorded = record_opt_out(session=s, settings=settings, phone=PHONE, by="Maya",
                                  channel="phone", note="called the office")  # fmt: skip
    wording = opt_out_confirmation(program_from(settings))
    event, message = recorded.event, recorded.confirmation
    assert (event.event, event.source, event.disclosure) == ("opt_out", "admin", wording)
    assert event.note == "opt-out received by phone, recorded by Maya: called the office"
    assert (message.kind, message.body, message.status) == ("optout_confirm", wording, "pending")
    # The number is opted out before anything is sent, and the confirmation still goes.
    assert send(engine, settings, message.id) == "accepted"
    assert texts_to(module_sim) == [wording]

    with session_scope(engine) as s:
        again = record_opt_out(session=s, settings=settings, phone=PHONE, by="Lee",
                               channel="email")  # fmt: skip
    assert again.confirmation is None and again.event.disclosure is None
    assert "already opted out: no confirmation sent" in again.event.note
    with Session(engine) as s:
        assert s.execute(select(Subscriber.status)).scalar_one() == "opted_out"
        assert len(s.execute(select(OutboundMessage)).scalars().all()) == 1
        assert [e.source for e in s.execute(select(ConsentEvent)).scalars()] == ["admin"] * 2


def test_an_unknown_number_can_be_opted_out_and_bad_input_is_refused(engine, settings):
    with session_scope(engine) as s:
        recorded = record_opt_out(session=s, settings=settings, phone=PHONE, by="Maya",
                                  channel="in_person")  # fmt: skip
        assert recorded.confirmation is not None
        for by, channel in (("", "phone"), ("Maya", "fax")):
            with pytest.raises(BadRequest):
                record_opt_out(session=s, settings=settings, phone=PHONE, by=by, channel=channel)
    with Session(engine) as s:
        assert s.execute(select(Subscriber.status)).scalar_one() == "opted_out"


def test_a_review_resolved_as_opt_out_sends_the_confirmation(client, settings, engine, module_sim):
    text_in(client, settings, PHONE, "JOIN")
    text_in(client, settings, PHONE, "I want to quit these")
    with Session(engine) as s:
        sid = s.execute(select(ConsentEvent.message_sid).where(
            ConsentEvent.event == "possible_opt_out")).scalar_one()  # fmt: skip
    with session_scope(engine) as s:
        events = resolve_review(session=s, message_sid=sid, opt_out=True, reviewer="Maya",
                                settings=settings)  # fmt: skip
    wording = opt_out_confirmation(program_from(settings))
    assert events[-1].event == "opt_out" and events[-1].disclosure == wording
    with Session(engine) as s:
        [message] = s.execute(select(OutboundMessage)).scalars().all()
    assert send(engine, settings, message.id) == "accepted"
    assert texts_to(module_sim) == [wording]
