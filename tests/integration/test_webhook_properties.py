"""Property: whatever a correctly signed form holds, both webhooks answer below 500 and the
database stays consistent (PostgreSQL and SQLite).

Hypothesis builds forms from Twilio's field names and from arbitrary ones, with arbitrary
text (control characters, NUL, emoji, thousands of digits), repeated keys included; each
form is signed exactly as Twilio would sign it. After every request:

* a 200 from ``/sms/inbound`` means its MessageSid is stored exactly once, with the body as
  sent minus control characters (or as first stored, for a retry);
* a 4xx stores nothing; a 204 from ``/sms/status`` means its (sid, status) is recorded;
* no message is left half-handled, every subscriber number is E.164 with a known status,
  and every consent event from a text points at a stored text.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlmodel import Session
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from sms_service.domain.keywords import Intent
from sms_service.models import (
    Campaign,
    ConsentEvent,
    InboundMessage,
    MessageStatusEvent,
    Subscriber,
)
from sms_service.web.webhook_input import clean_text
from tests.factories import new_sid

NUMBERS = ["+12025550123", "+12025550124", "+447700900123", "(202) 555-0125"]
WORDS = ["STOP", "JOIN", "SIGN", "HELP", "START", "HK64", "stop please", "Ada Lovelace", "hi"]
STATUSES = ["queued", "sent", "delivered", "undelivered", "failed", "read", "bogus"]
ERROR_CODES = ["30003", "30004", "30005", "30006", "21610", "²", "99999999999", "9" * 5000]
KNOWN_STATUSES = {"none", "subscribed", "opted_out", "invalid"}

noise = st.text(max_size=40)
wild = st.text(max_size=300)  # any code point but lone surrogates, NUL and controls included


def spiced(words: list[str]) -> st.SearchStrategy[str]:
    """A known word, with control and zero-width characters sprinkled in, or anything."""
    sprinkled = st.tuples(st.sampled_from(words), st.sampled_from(["\x00", "\x1b", "\u200b", ""]))
    return st.one_of(
        st.sampled_from(words),
        sprinkled.map(lambda t: t[1] + t[0] + t[1]),
        wild,
    )


sids = st.one_of(st.builds(new_sid), noise, st.text(min_size=60, max_size=80))
extra_pairs = st.lists(st.tuples(st.text(min_size=1, max_size=12), noise), max_size=4)


@st.composite
def inbound_forms(draw) -> MultiDict:
    fields = {
        "MessageSid": draw(sids),
        "AccountSid": draw(st.one_of(st.just("AC" + "1" * 32), noise)),
        "From": draw(st.one_of(st.sampled_from(NUMBERS), noise)),
        "To": draw(st.one_of(st.just("21333"), noise)),
        "Body": draw(spiced(WORDS)),
        "NumMedia": draw(st.one_of(st.sampled_from(["0", "1", "99999999999", "²"]), noise)),
        "OptOutType": draw(st.one_of(st.sampled_from(["", "STOP", "HELP"]), noise)),
    }
    dropped = draw(st.sets(st.sampled_from(sorted(fields)), max_size=2))
    form = MultiDict({k: v for k, v in fields.items() if k not in dropped})
    for key, value in draw(extra_pairs):
        form.add(key, value)  # new fields, or a second value for a known one
    return form


@st.composite
def status_forms(draw) -> MultiDict:
    sid = draw(sids)
    status = draw(st.one_of(st.sampled_from(STATUSES), noise))
    form = MultiDict(
        {
            "MessageSid": sid,
            "SmsSid": sid,
            "MessageStatus": status,
            "To": draw(st.one_of(st.sampled_from(NUMBERS), noise)),
            "ErrorCode": draw(st.one_of(st.sampled_from(ERROR_CODES), noise)),
        }
    )
    for key, value in draw(extra_pairs):
        form.add(key, value)
    return form


def post(client, settings, path: str, form: MultiDict):
    url = settings.public_base_url + path
    signature = RequestValidator(settings.twilio_auth_token).compute_signature(url, form)
    return client.post(path, data=form, headers={"X-Twilio-Signature": signature})


def count(session: Session, model, *where) -> int:
    return session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def assert_consistent(session: Session) -> None:
    intents = set(session.execute(select(InboundMessage.intent)).scalars())
    assert intents <= {i.value for i in Intent}  # every stored text carries its decision
    for phone, status in session.execute(select(Subscriber.phone, Subscriber.status)).all():
        assert phone.startswith("+") and phone[1:].isdigit() and status in KNOWN_STATUSES
    orphans = session.execute(
        select(func.count())
        .select_from(ConsentEvent)
        .where(
            ConsentEvent.source == "sms",
            ~ConsentEvent.message_sid.in_(select(InboundMessage.message_sid)),
        )
    ).scalar_one()
    assert orphans == 0


PROPERTY = hypothesis_settings(
    max_examples=120,
    deadline=None,  # a shared 2-core machine: time is not the property
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def with_campaign(app):
    with Session(app.extensions["sms_engine"]) as s:
        s.add(Campaign(keyword="HK64", title="Release the 64", petition_text="Dear Secretary"))
        s.commit()
    return app


@PROPERTY
@given(form=inbound_forms())
def test_signed_random_inbound_forms_never_5xx_and_lose_nothing(
    client, with_campaign, settings, form
):
    app = with_campaign
    engine = app.extensions["sms_engine"]
    with Session(engine) as s:
        before = count(s, InboundMessage), count(s, ConsentEvent)
    sid = (form.get("MessageSid") or "").strip()
    response = post(client, settings, "/sms/inbound", form)
    assert response.status_code < 500, response.data[:300]
    with Session(engine) as s:
        if response.status_code == 200:
            [stored] = s.execute(
                select(InboundMessage).where(InboundMessage.message_sid == sid)
            ).scalars()
            if count(s, InboundMessage) > before[0]:  # new, not a retry of an earlier sid
                assert stored.body == clean_text(form.get("Body"))
        else:
            assert 400 <= response.status_code < 500
            assert (count(s, InboundMessage), count(s, ConsentEvent)) == before
        assert_consistent(s)


@PROPERTY
@given(form=status_forms())
def test_signed_random_status_callbacks_never_5xx(client, app, settings, form):
    engine = app.extensions["sms_engine"]
    with Session(engine) as s:
        before = count(s, MessageStatusEvent)
    response = post(client, settings, "/sms/status", form)
    assert response.status_code < 500, response.data[:300]
    with Session(engine) as s:
        if response.status_code == 204:
            sid = form.get("MessageSid").strip()
            assert count(s, MessageStatusEvent, MessageStatusEvent.sid == sid) >= 1
        else:
            assert 400 <= response.status_code < 500
            assert count(s, MessageStatusEvent) == before
        assert_consistent(s)
