"""The public petition page and its double opt-in, on PostgreSQL and SQLite: signatures
stored with source web, never counted twice; a confirmation text queued (never sent in the
request), sent to the carrier simulator by the single-send job, and a YES (or STOP) through
the signed webhook deciding the subscription; abuse limits."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from rq import Queue
from sqlalchemy import update
from sqlmodel import Session

from sms_service.carrier.client import close_twilio_client, make_twilio_client
from sms_service.devtools.carrier_sim import SimConfig, run_in_thread
from sms_service.models import WebConfirmation
from sms_service.services.exports import ExportFilter, write_consent
from tests.factories import (
    PETITION_PHONE as PHONE,
)
from tests.factories import (
    confirmations,
    consent_events,
    make_petition_app,
    sign_petition,
    signatures,
    status_of,
    text_in,
    texts_to,
)
from workers import QUEUE_DEFAULT
from workers.send import send_message


@pytest.fixture
def app(petition_app):
    return petition_app


@pytest.fixture
def sim(app):
    handle = run_in_thread(SimConfig.from_settings(app.config["SETTINGS"], port=0))
    yield handle
    handle.stop()


def send_queued(app, sim, redis_connection) -> list[str]:
    """Run the queued single-send jobs against the simulator; their outcomes."""
    settings = app.config["SETTINGS"].model_copy(
        update={"twilio_api_base_url": sim.url, "public_base_url": None}
    )
    client = make_twilio_client(settings)
    queue = Queue(QUEUE_DEFAULT, connection=redis_connection)
    outcomes = []
    try:
        for job in queue.get_jobs():
            outcomes.append(
                send_message(engine=app.extensions["sms_engine"], client=client, settings=settings,
                        outbound_message_id=job.args[0])
            )  # fmt: skip
            job.delete()
    finally:
        close_twilio_client(client)
    return outcomes


def sim_texts(sim, phone: str = PHONE) -> list[dict]:
    import requests

    return requests.get(f"{sim.url}/sim/messages", params={"to": phone}, timeout=5).json()[
        "messages"
    ]


def test_page_shows_title_text_count_and_the_disclosure_beside_the_number(client):
    page = client.get("/p/hk64")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Release the 64" in html and "Dear Secretary Cheng:" in html
    assert "0</strong>" in html  # the live count
    for part in ("Rights Alerts at 21333", "Up to 4 msgs/mo", "Msg &amp; data rates may apply",
                 "Reply HELP for help, STOP to cancel", "not a condition of signing",
                 'href="https://rights.example/sms-terms"'):  # fmt: skip
        assert part in html
    assert 'name="sms_consent" type="checkbox" value="on"\n' in html  # never ticked for them
    assert 'aria-describedby="disclosure' in html
    assert client.get("/p/NOPE").status_code == 404


def test_signing_without_a_number_stores_a_web_signature_once(app, client):
    first = sign_petition(client, name="Ada Lovelace", email="Ada@Example.org")
    assert first.status_code == 303 and "again=" in first.headers["Location"]
    again = sign_petition(client, name="Ada L.", email="ada@example.org")
    assert again.headers["Location"].endswith("again=1")
    [stored] = signatures(app)
    assert (stored.source, stored.email, stored.subscriber_id) == ("web", "ada@example.org", None)
    assert stored.ip == "198.51.100.7" and stored.user_agent == "pytest-browser/1.0"
    assert "Consent is not a condition of signing" in stored.disclosure
    assert "1</strong> signature" in client.get(first.headers["Location"]).get_data(as_text=True)
    # No number, no e-mail: the same name from the same address is the same signer.
    sign_petition(client, name="Grace")
    sign_petition(client, name="grace")
    sign_petition(client, name="Grace", ip="203.0.113.9")
    assert len(signatures(app)) == 3


def test_bad_fields_come_back_beside_the_field_and_nothing_is_stored(app, client):
    page = sign_petition(client, name="", phone="12", email="not-an-address")
    assert page.status_code == 422
    html = page.get_data(as_text=True)
    assert 'id="name-error">Enter your name.' in html
    assert 'id="phone-error">That is not a phone number' in html
    assert 'id="email-error">' in html and 'aria-invalid="true"' in html
    assert 'value="not-an-address"' in html  # what they typed is kept
    unreachable = sign_petition(client, name="Bob", phone="+44 7911 123456", sms_consent=True)
    assert "reach only numbers in" in unreachable.get_data(as_text=True)
    consent_without_number = sign_petition(client, name="Bob", sms_consent=True)
    assert "Enter your mobile number to get texts" in consent_without_number.get_data(as_text=True)
    assert signatures(app) == [] and texts_to(app) == []


def test_a_form_without_its_csrf_token_is_refused(app, client):
    response = client.post("/p/HK64", data={"name": "Ada"})
    assert response.status_code == 400
    assert signatures(app) == []


def test_a_number_without_consent_signs_and_is_never_texted(app, client, redis_connection):
    sign_petition(client, name="Ada", phone="(202) 555-0123")
    [stored] = signatures(app)
    assert stored.subscriber_id is not None
    assert texts_to(app) == [] and confirmations(app) == []
    assert status_of(app) == "none"
    assert Queue(QUEUE_DEFAULT, connection=redis_connection).count == 0


def test_yes_to_the_confirmation_subscribes_and_logs_a_web_opt_in(
    app, client, settings, sim, redis_connection
):
    response = sign_petition(client, name="Ada", phone="202-555-0123", sms_consent=True)
    assert response.headers["Location"].endswith("c=queued&again=")
    # Queued, not sent, inside the request.
    [message] = texts_to(app)
    assert message.status == "pending" and message.kind == "confirmation"
    assert sim_texts(sim) == []
    assert status_of(app) == "none"

    assert send_queued(app, sim, redis_connection) == ["accepted"]
    [text] = sim_texts(sim)
    assert "Reply YES" in text["body"] and "Rights Alerts" in text["body"]
    assert "STOP to cancel" in text["body"] and "Msg & data rates may apply" in text["body"]

    reply = text_in(client, settings, PHONE, "Yes")
    assert "You're subscribed" in reply.get_data(as_text=True)
    assert status_of(app) == "subscribed"
    opt_in = [e for e in consent_events(app) if e.event == "opt_in"]
    assert len(opt_in) == 1 and opt_in[0].source == "web"
    [confirmation] = confirmations(app)
    assert confirmation.status == "confirmed"
    assert opt_in[0].message_sid == confirmation.reply_message_sid
    assert opt_in[0].disclosure == signatures(app)[0].disclosure  # the page's wording
    assert text["body"] in opt_in[0].note  # the confirmation text that was sent

    out = io.StringIO()
    write_consent(app.extensions["sms_engine"], out, ExportFilter(phone=PHONE))
    web_rows = [line for line in out.getvalue().splitlines() if ",opt_in," in line]
    assert len(web_rows) == 1 and ",web," in web_rows[0]


def test_stop_to_the_confirmation_opts_out_and_no_later_form_texts_the_number(
    app, client, settings, sim, redis_connection
):
    sign_petition(client, name="Ada", phone=PHONE, sms_consent=True)
    send_queued(app, sim, redis_connection)
    text_in(client, settings, PHONE, "STOP")
    assert status_of(app) == "opted_out"
    assert confirmations(app)[0].status == "opted_out"
    assert not [e for e in consent_events(app) if e.event == "opt_in"]
    # A later YES is not a confirmation any more (the window is closed by the STOP) ...
    assert "You're subscribed" not in text_in(client, settings, PHONE, "Y").get_data(as_text=True)
    # ... and the form never texts an opted-out number, whoever fills it in.
    later = sign_petition(client, name="Someone", phone=PHONE, sms_consent=True, ip="203.0.113.50")
    assert "c=opted_out" in later.headers["Location"]
    assert len(texts_to(app)) == 1
    assert status_of(app) == "opted_out"


def test_no_reply_within_the_window_subscribes_nobody(app, client, settings, sim, redis_connection):
    sign_petition(client, name="Ada", phone=PHONE, sms_consent=True)
    send_queued(app, sim, redis_connection)
    with Session(app.extensions["sms_engine"]) as session:
        late = WebConfirmation.expires_at - timedelta(hours=49)
        session.execute(update(WebConfirmation).values(expires_at=late))
        session.commit()
    text_in(client, settings, PHONE, "YES")
    assert status_of(app) == "none"
    assert not [e for e in consent_events(app) if e.event == "opt_in"]


def test_one_confirmation_text_per_number_per_day(app, client, redis_connection):
    first = sign_petition(client, name="Ada", phone=PHONE, sms_consent=True)
    second = sign_petition(client, name="Ada", phone=PHONE, sms_consent=True, ip="203.0.113.1")
    other_petition_form = sign_petition(
        client, name="Eve", phone=PHONE, sms_consent=True, ip="203.0.113.2"
    )
    assert "c=queued" in first.headers["Location"]
    assert "c=recently_sent" in second.headers["Location"]
    assert "c=recently_sent" in other_petition_form.headers["Location"]
    assert len(texts_to(app)) == 1 and len(confirmations(app)) == 1
    assert Queue(QUEUE_DEFAULT, connection=redis_connection).count == 1
    assert len(signatures(app)) == 1  # the same number signs once


def test_sms_signers_are_not_counted_again_on_the_web(app, client, settings):
    text_in(client, settings, PHONE, "HK64")
    assert status_of(app) == "subscribed"
    response = sign_petition(client, name="Ada", phone=PHONE, sms_consent=True)
    assert response.headers["Location"].endswith("c=already_subscribed&again=1")
    assert len(signatures(app)) == 1 and texts_to(app) == []


def test_the_honeypot_answers_like_success_and_keeps_nothing(app, client, redis_connection):
    response = sign_petition(
        client, name="Bot", phone=PHONE, sms_consent=True, website="http://spam"
    )
    assert response.status_code == 303
    assert signatures(app) == [] and texts_to(app) == [] and status_of(app) is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_per_address_limit(database_url, redis_connection):
    app = make_petition_app(database_url, redis_connection, petition_rate_limit_ip="3 per minute")
    client = app.test_client()
    codes = [sign_petition(client, name=f"Person {n}").status_code for n in range(4)]
    assert codes == [303, 303, 303, 429]
    refused = sign_petition(client, name="Late")
    assert "Too many attempts" in refused.get_data(as_text=True)
    # When to come back: the end of the minute's window, rounded up to a whole second.
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    assert "X-RateLimit-Remaining" not in refused.headers  # no storage round trip for it
    assert (
        sign_petition(client, name="Elsewhere", ip="192.0.2.44").status_code == 303
    )  # others go on
    assert len(signatures(app)) == 4
    app.extensions["sms_engine"].dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_per_number_limit_holds_across_addresses(database_url, redis_connection):
    app = make_petition_app(database_url, redis_connection, petition_rate_limit_number="2 per hour")
    client = app.test_client()
    codes = [
        sign_petition(client, name="Ada", phone=number, ip=f"192.0.2.{n}").status_code
        for n, number in enumerate(["+12025550123", "(202) 555-0123", "2025550123"])
    ]
    assert codes == [303, 303, 429]
    assert (
        sign_petition(client, name="Bob", phone="+12025550199", ip="192.0.2.9").status_code == 303
    )
    app.extensions["sms_engine"].dispose()


def test_web_signatures_with_and_without_a_number_are_in_the_signature_export(
    app, client, settings
):
    from sms_service.services.exports import write_signatures

    sign_petition(client, name="Ada", email="ada@example.org")
    sign_petition(client, name="Grace", phone=PHONE)
    text_in(client, settings, "+12025550199", "SIGN")
    out = io.StringIO()
    count = write_signatures(app.extensions["sms_engine"], out, ExportFilter(), campaign="HK64")
    lines = out.getvalue().splitlines()
    assert count == 3 and lines[0].endswith(",source,email")
    assert lines[1].split(",")[1:] == [
        "",
        "Ada",
        "HK64",
        "Release the 64",
        "web",
        "ada@example.org",
    ]
    assert lines[2].split(",")[1:3] == [PHONE, "Grace"] and lines[3].split(",")[5] == "sms"


def _sign_directly(app, *, name: str, email=None, phone=None, consent=False, ip="198.51.100.7"):
    from sms_service.domain.petition import clean_signature
    from sms_service.program import reach_from
    from sms_service.services.petition import sign_on_web

    settings = app.config["SETTINGS"]
    form = clean_signature(
        name=name, email=email or "", phone=phone or "", sms_consent=consent,
        reach=reach_from(settings),
    )  # fmt: skip
    return sign_on_web(
        app.extensions["sms_engine"], keyword="hk64", form=form, settings=settings,
        program=app.extensions["sms_program"], ip=ip, user_agent="pytest",
    )  # fmt: skip


def test_each_confirmation_names_its_own_text(app):
    """The confirmation's row takes the id of the text inserted just before it, on the same
    connection, in the same batch."""
    phones = [f"+1202555{n:04d}" for n in range(130, 136)]
    results = [
        _sign_directly(app, name=f"P{n}", phone=phone, consent=n % 2 == 0)
        for n, phone in enumerate(phones)
    ]
    sign_petition(app.test_client(), name="No number")  # another insert in between
    results.append(_sign_directly(app, name="Late", phone="+12025550140", consent=True))
    queued = {r.outbound_message_id for _, r in results if r.outbound_message_id}
    found = confirmations(app)
    assert len(found) == len(queued) == 4
    for confirmation in found:
        [text] = texts_to(app, confirmation.phone)
        assert confirmation.outbound_message_id == text.id and text.id in queued
        assert confirmation.signature_id == signatures_of(app, confirmation.phone)


def signatures_of(app, phone: str) -> int:
    """The id of the one signature naming ``phone``."""
    from sms_service.models import Signature, Subscriber
    from tests.factories import rows

    [subscriber] = rows(app, Subscriber, Subscriber.phone == phone)
    [signature] = rows(app, Signature, Signature.subscriber_id == subscriber.id)
    return signature.id


def test_a_closed_petition_stores_nothing(app):
    from sqlmodel import Session

    from sms_service.models import Campaign

    with Session(app.extensions["sms_engine"]) as session:
        session.execute(update(Campaign).values(active=False))
        session.commit()
    assert _sign_directly(app, name="Ada", phone=PHONE, consent=True) is None
    assert signatures(app) == [] and texts_to(app) == [] and consent_events(app) == []


def test_a_repeat_is_found_by_number_e_mail_or_name_and_address_and_completed(app):
    _, first = _sign_directly(app, name="Ada", email="ada@example.org")
    # The same e-mail, now with a number and consent: the first signature gains the number,
    # is not counted again, and the number gets its confirmation text.
    _, again = _sign_directly(app, name="Ada L.", email="ada@example.org", phone=PHONE,
                              consent=True)  # fmt: skip
    assert (again.signature_id, again.counted, again.confirmation) == (
        first.signature_id, False, "queued"
    )  # fmt: skip
    [stored] = signatures(app)
    assert stored.subscriber_id is not None and stored.name == "Ada"
    # The number alone finds it too; no second signature event in the consent log.
    _, third = _sign_directly(app, name="Someone", phone=PHONE)
    assert (third.signature_id, third.counted) == (first.signature_id, False)
    assert len(texts_to(app)) == 1


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_twins_at_once_sign_once(app):
    """Eight requests from one supporter at the same moment: one signature, one text, and
    every request answers with that signature."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(
            lambda n: _sign_directly(app, name=f"Ada {n}", email="ada@example.org",
                                     phone=PHONE, consent=True),
            range(8),
        ))  # fmt: skip
    results = [r for _, r in outcomes]
    assert len({r.signature_id for r in results}) == 1 and len(signatures(app)) == 1
    assert sum(r.counted for r in results) == 1
    assert len(texts_to(app)) == len(confirmations(app)) == 1
    assert sorted(r.confirmation for r in results) == ["queued"] + ["recently_sent"] * 7
    assert [e.event for e in consent_events(app)] == ["signature"]
