"""POST /sms/inbound end to end, on PostgreSQL and SQLite: signature, parsing, idempotency,
state changes and the consent log committed together."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session

from sms_service.errors import ConsentLogIsAppendOnly
from sms_service.models import Campaign, ConsentEvent, InboundMessage, Signature, Subscriber
from tests.factories import inbound_form, post_signed, sign, text_in

PHONE = "+12025550123"


def replies(response) -> list[str]:
    root = ET.fromstring(response.data)
    assert root.tag == "Response"
    return [m.text or "" for m in root.findall("Message")]


def rows(app, model):
    with Session(app.extensions["sms_engine"]) as s:
        return list(s.execute(select(model).order_by(model.id)).scalars())


def add_campaign(app, keyword="HK64", title="Release the 64", active=True) -> int:
    with Session(app.extensions["sms_engine"]) as s:
        c = Campaign(
            keyword=keyword, title=title, petition_text="Dear Secretary Cheng", active=active
        )
        s.add(c)
        s.commit()
        return c.id


def test_missing_signature_is_403_and_stores_nothing(client, app):
    response = client.post("/sms/inbound", data=inbound_form(PHONE, "JOIN"))
    assert response.status_code == 403
    assert rows(app, InboundMessage) == [] and rows(app, ConsentEvent) == []


def test_bad_signature_is_403(client, app, settings):
    form = inbound_form(PHONE, "JOIN")
    good = sign(settings, "/sms/inbound", form)
    form["Body"] = "STOP"  # tampered after signing
    response = client.post("/sms/inbound", data=form, headers={"X-Twilio-Signature": good})
    assert response.status_code == 403
    assert rows(app, Subscriber) == []


def test_signature_covers_fields_twilio_adds_later(client, app, settings):
    form = inbound_form(PHONE, "JOIN", AddOns='{"status":"successful"}', NewField="x")
    assert post_signed(client, settings, "/sms/inbound", form).status_code == 200
    assert rows(app, Subscriber)[0].status == "subscribed"


@pytest.mark.parametrize("from_", ["", "not-a-number", "+1555"])
def test_missing_or_bad_from_is_400(client, app, settings, from_):
    response = text_in(client, settings, from_, "JOIN")
    assert response.status_code == 400
    assert b"From" in response.data
    assert rows(app, InboundMessage) == []


def test_join_subscribes_and_logs_consent_with_disclosure(client, app, settings):
    response = text_in(client, settings, "(202) 555-0123", "  join. ")
    assert response.status_code == 200
    [reply] = replies(response)
    for part in (
        "Rights Alerts",
        "Up to 4 msgs/mo",
        "Msg & data rates may apply",
        "Reply HELP for help, STOP to cancel",
        "https://rights.example/sms-terms",
    ):
        assert part in reply
    [sub] = rows(app, Subscriber)
    assert sub.phone == PHONE and sub.status == "subscribed"
    [event] = rows(app, ConsentEvent)
    assert (event.event, event.keyword, event.phone, event.source) == (
        "opt_in",
        "JOIN",
        PHONE,
        "sms",
    )
    assert event.message_body == "  join. " and event.disclosure == reply
    assert event.program == "Rights Alerts" and event.occurred_at.tzinfo is not None
    [msg] = rows(app, InboundMessage)
    assert msg.body == "  join. " and msg.to_number == "21333"


def test_retry_with_same_message_sid_changes_nothing_and_replies_the_same(client, app, settings):
    form = inbound_form(PHONE, "JOIN")
    first = post_signed(client, settings, "/sms/inbound", form)
    second = post_signed(client, settings, "/sms/inbound", form)
    assert first.data == second.data and replies(first)
    assert len(rows(app, ConsentEvent)) == 1 and len(rows(app, InboundMessage)) == 1


def test_stop_then_silence(client, app, settings):
    text_in(client, settings, PHONE, "JOIN")
    [confirmation] = replies(text_in(client, settings, PHONE, "Stop."))
    assert "Rights Alerts" in confirmation and "no more messages" in confirmation
    assert replies(text_in(client, settings, PHONE, "hello?")) == []
    assert replies(text_in(client, settings, PHONE, "STOP")) == []
    assert replies(text_in(client, settings, PHONE, "JOIN now")) == []
    assert rows(app, Subscriber)[0].status == "opted_out"
    # HELP is answered even when opted out, without changing the status.
    [help_reply] = replies(text_in(client, settings, PHONE, "help"))
    assert "help@rights.example" in help_reply
    assert rows(app, Subscriber)[0].status == "opted_out"
    events = [e.event for e in rows(app, ConsentEvent)]
    assert events == ["opt_in", "opt_out", "opt_out", "help"]


def test_hi_from_unknown_number_gets_nothing_and_creates_no_subscriber(client, app, settings):
    assert replies(text_in(client, settings, PHONE, "hi")) == []
    assert rows(app, Subscriber) == [] and rows(app, ConsentEvent) == []
    assert rows(app, InboundMessage)[0].intent == "ignored"


def test_start_after_stop_resubscribes(client, app, settings):
    text_in(client, settings, PHONE, "JOIN")
    text_in(client, settings, PHONE, "STOP")
    [reply] = replies(text_in(client, settings, PHONE, "unstop"))
    assert "Msg & data rates may apply" in reply
    assert rows(app, Subscriber)[0].status == "subscribed"


def test_sign_flow_stores_signature_asks_name_and_counts_once(client, app, settings):
    add_campaign(app)
    [ask] = replies(text_in(client, settings, PHONE, "SIGN"))
    assert "Release the 64" in ask and "full name" in ask and "Msg & data rates may apply" in ask
    [sig] = rows(app, Signature)
    assert sig.name is None and sig.source == "sms"
    assert rows(app, Subscriber)[0].status == "subscribed"
    assert [e.event for e in rows(app, ConsentEvent)] == ["signature", "opt_in"]

    [thanks] = replies(text_in(client, settings, PHONE, "Ada Lovelace"))
    assert "Thank you, Ada" in thanks and "1 signature" in thanks
    assert rows(app, Signature)[0].name == "Ada Lovelace"

    [again] = replies(text_in(client, settings, PHONE, "hk64"))
    assert "already signed" in again
    assert len(rows(app, Signature)) == 1
    assert [e.event for e in rows(app, ConsentEvent)] == ["signature", "opt_in"]


def test_keyword_wins_over_pending_name(client, app, settings):
    add_campaign(app)
    text_in(client, settings, PHONE, "SIGN")
    [reply] = replies(text_in(client, settings, PHONE, "HELP"))
    assert "help@rights.example" in reply
    assert rows(app, Signature)[0].name is None
    text_in(client, settings, PHONE, "STOP")
    assert rows(app, Subscriber)[0].status == "opted_out"
    assert rows(app, Subscriber)[0].pending_name_campaign_id is None


def test_advanced_opt_out_records_but_does_not_reply(client, app, settings):
    text_in(client, settings, PHONE, "JOIN")
    response = text_in(client, settings, PHONE, "STOP", OptOutType="STOP")
    assert replies(response) == []
    assert rows(app, Subscriber)[0].status == "opted_out"
    last = rows(app, ConsentEvent)[-1]
    assert last.event == "opt_out" and last.disclosure is None and "Advanced Opt-Out" in last.note


def test_possible_opt_out_is_recorded_for_review(client, app, settings):
    text_in(client, settings, PHONE, "JOIN")
    [reply] = replies(text_in(client, settings, PHONE, "We've got to STOP this bill!"))
    assert reply == "Rights Alerts: Reply STOP to stop all texts."
    assert rows(app, Subscriber)[0].status == "subscribed"
    last = rows(app, ConsentEvent)[-1]
    assert last.event == "possible_opt_out" and last.review_by is not None
    assert last.note == "possible opt-out: uses an opt-out word"
    # While staff decide: no "Sorry, we didn't get that", no second how-to-stop reply.
    assert replies(text_in(client, settings, PHONE, "hi")) == []
    assert replies(text_in(client, settings, PHONE, "stpo")) == []
    events = [e.event for e in rows(app, ConsentEvent)]
    assert events[-2:] == ["possible_opt_out", "possible_opt_out"]  # recorded, not answered
    [help_reply] = replies(text_in(client, settings, PHONE, "HELP"))
    assert "help@" in help_reply


@pytest.mark.parametrize(
    "text", ["Stop please", "STOP STOP", "*STOP*", "Please remove my number", "S\u200bTOP",
             "no me envíen más mensajes", "STOP\x00", "S\u00adTOP\u200d"],
)  # fmt: skip
def test_reasonable_wording_opts_out_at_once(client, app, settings, text):
    text_in(client, settings, PHONE, "JOIN")
    [reply] = replies(text_in(client, settings, PHONE, text))
    assert "no more messages" in reply or "no recibirá más mensajes" in reply
    assert rows(app, Subscriber)[0].status == "opted_out"
    assert rows(app, ConsentEvent)[-1].event == "opt_out"


def test_spanish_keywords_get_spanish_replies_and_the_language_is_remembered(client, app, settings):
    [joined] = replies(text_in(client, settings, PHONE, "UNIRSE"))
    assert "Pueden aplicarse tarifas de mensajes y datos" in joined and "AYUDA" in joined
    assert rows(app, Subscriber)[0].language == "es"
    [fallback] = replies(text_in(client, settings, PHONE, "hola"))  # remembered
    assert "no entendimos" in fallback
    [stopped] = replies(text_in(client, settings, PHONE, "STOP"))
    assert "no recibirá más mensajes" in stopped and "UNIRSE" in stopped
    [helped] = replies(text_in(client, settings, PHONE, "AYUDA"))
    assert "UNIRSE" in helped and "ALTO" not in helped  # opted out: how to rejoin
    [english] = replies(text_in(client, settings, PHONE, "HELP"))
    assert "Reply START to resubscribe" in english and "STOP" not in english
    assert rows(app, Subscriber)[0].language == "en"


def test_a_text_that_changes_nothing_leaves_the_subscribers_row_as_it_was(client, app, settings):
    """HELP or a question from a subscriber writes no new version of their row: its
    ``updated_at`` (shown as the status's change when the status has no time of its own)
    stays the time of the last real change; a real change still writes it."""
    text_in(client, settings, PHONE, "JOIN")
    text_in(client, settings, PHONE, "HELP")  # sets "en"
    [before] = rows(app, Subscriber)
    for body in ["HELP", "what is this?", "INFO"]:
        assert text_in(client, settings, PHONE, body).status_code == 200
    [after] = rows(app, Subscriber)
    assert after.model_dump() == before.model_dump()
    text_in(client, settings, PHONE, "stop please")
    [stopped] = rows(app, Subscriber)
    assert stopped.status == "opted_out" and stopped.updated_at > before.updated_at
    assert len(rows(app, InboundMessage)) == 6  # every text kept all the same


def test_consent_log_refuses_update_and_delete_in_the_database(app, client, settings):
    text_in(client, settings, PHONE, "JOIN")
    engine = app.extensions["sms_engine"]
    with Session(engine) as s:
        event = s.execute(select(ConsentEvent)).scalar_one()
        event.event = "opt_out"
        with pytest.raises(ConsentLogIsAppendOnly):
            s.commit()
    for statement in ("UPDATE consent_events SET event = 'opt_out'", "DELETE FROM consent_events"):
        with engine.connect() as conn, pytest.raises((DBAPIError, OperationalError)):
            conn.execute(text(statement))
    assert rows(app, ConsentEvent)[0].event == "opt_in"
