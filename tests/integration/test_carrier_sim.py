"""The carrier simulator over real HTTP, driven by the official twilio client.

Each test starts its own simulator in a thread on a free port and talks to it through
``make_twilio_client`` exactly as the service does. Webhooks (status callbacks, inbound
texts) land on a small ``http.server`` receiver that records what arrived.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

import pytest
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from config import Settings
from sms_service.carrier.client import (
    make_twilio_client,
    read_environment_once,
    rewrite_url,
)
from sms_service.devtools.carrier_sim import SimConfig, SimHandle, run_in_thread
from tests.factories import free_port, wait_for, wait_until_it_answers

ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "sim-test-token"
TO = "+12025550123"
OTHER = "+12025550188"
SID = re.compile(r"^SM[0-9a-f]{32}$")


@dataclass(frozen=True)
class Received:
    """One request that reached the receiver."""

    path: str
    headers: dict[str, str]
    form: dict[str, str]


class Receiver:
    """A local HTTP server standing in for the service: records POSTs, answers ``reply``."""

    def __init__(self) -> None:
        self.received: queue.Queue[Received] = queue.Queue()
        self.reply = (200, "text/xml", "<Response/>")
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                form = dict(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
                receiver.received.put(Received(self.path, dict(self.headers), form))
                status, content_type, body = receiver.reply
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """The first ``count`` requests, waiting for them to arrive."""
        deadline = time.monotonic() + timeout
        got = []
        while len(got) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"expected {count} requests, got {len(got)}: {got}")
            got.append(self.received.get(timeout=remaining))
        return got

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def signature_ok(url: str, request: Received, token: str = AUTH_TOKEN) -> bool:
    """True when the request's X-Twilio-Signature is Twilio's signature of url + form."""
    signature = request.headers.get("X-Twilio-Signature", "")
    return RequestValidator(token).validate(url, request.form, signature)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def sim_config() -> Callable[..., SimConfig]:
    """The simulator on its own for conftest's ``start_sim`` (and ``sim``): a free port and
    this module's credentials, no service settings."""
    return lambda **overrides: SimConfig(
        **({"port": 0, "account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN} | overrides)
    )


@pytest.fixture
def clients(clients) -> Callable[..., Client]:
    """Official twilio clients pointed at a simulator (or a URL) with this module's
    credentials: conftest's ``clients``, which closes their sessions afterwards."""

    def make(sim: SimHandle | str, **settings: str) -> Client:
        values = {
            "twilio_api_base_url": sim if isinstance(sim, str) else sim.url,
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_auth_token": AUTH_TOKEN,
        }
        return clients(Settings(**(values | settings)), timeout=10)

    return make


@pytest.fixture
def twilio(sim, clients) -> Client:
    return clients(sim)


def sim_json(sim: SimHandle, method: str, path: str, **kwargs) -> dict:
    with requests.request(method, sim.url + path, timeout=10, **kwargs) as response:
        assert response.ok, response.text
        return response.json() if response.content else {}


def refused(call: Callable[[], object]) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as caught:
        call()
    return caught.value


# --- sending -------------------------------------------------------------------------


def test_send_answers_like_twilio(twilio):
    message = twilio.messages.create(
        to=TO, from_="21333", body="Thanks for signing!", status_callback="http://x/status"
    )
    assert SID.match(message.sid)
    assert message.status == "queued"
    assert message.num_segments == "1"
    assert message.num_media == "0"
    assert message.direction == "outbound-api"
    assert (message.to, message.from_, message.body) == (TO, "21333", "Thanks for signing!")
    assert message.account_sid == ACCOUNT_SID
    assert message.api_version == "2010-04-01"
    assert message.error_code is None and message.price is None
    assert message.uri == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{message.sid}.json"
    assert abs(message.date_created - datetime.now(UTC)) < timedelta(seconds=5)


@pytest.mark.parametrize(
    ("body", "segments"),
    [("a" * 160, "1"), ("a" * 161, "2"), ("a" * 159 + "\u2019", "3"), ("\U0001f600" * 36, "2")],
)
def test_num_segments_follow_the_segment_counter(twilio, body, segments):
    assert twilio.messages.create(to=TO, from_="21333", body=body).num_segments == segments


def test_raw_answer_has_rfc2822_dates_and_string_counts(sim):
    with requests.post(
        f"{sim.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
        data={"To": TO, "From": "21333", "Body": "hi"},
        auth=(ACCOUNT_SID, AUTH_TOKEN),
        timeout=10,
    ) as response:
        assert response.status_code == 201
        payload = response.json()
    assert re.match(r"^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000$", payload["date_created"])
    for key in ("date_created", "date_updated"):
        assert parsedate_to_datetime(payload[key]).tzinfo is not None
    assert payload["date_sent"] is None  # Twilio fills it in once sent
    assert payload["num_segments"] == "1" and payload["num_media"] == "0"
    assert payload["subresource_uris"]["media"].endswith(f"/Messages/{payload['sid']}/Media.json")
    assert payload["price_unit"] == "USD" and payload["messaging_service_sid"] is None


def test_messaging_service_send_is_accepted_without_a_sender_yet(twilio):
    service = "MG" + "1" * 32
    message = twilio.messages.create(to=TO, messaging_service_sid=service, body="hi")
    assert (message.status, message.from_, message.num_segments) == ("accepted", None, "0")
    fetched = twilio.messages(message.sid).fetch()
    assert fetched.from_ == "21333" and fetched.num_segments == "1"
    assert fetched.messaging_service_sid == service


# --- refusals --------------------------------------------------------------------------


@pytest.mark.parametrize("to", ["+1555", "+12345", "not a number", "+1202555012345"])
def test_invalid_to_is_21211(twilio, to):
    error = refused(lambda: twilio.messages.create(to=to, from_="21333", body="hi"))
    assert (error.code, error.status) == (21211, 400)
    assert to in error.msg


def test_body_over_1600_characters_is_21617(twilio):
    assert twilio.messages.create(to=TO, from_="21333", body="a" * 1600).num_segments == "11"
    for body in ("a" * 1601, "\U0001f600" * 801):  # emoji count as two
        error = refused(lambda b=body: twilio.messages.create(to=TO, from_="21333", body=b))
        assert (error.code, error.status) == (21617, 400)


def test_missing_body_is_21602(twilio):
    error = refused(lambda: twilio.messages.create(to=TO, from_="21333", body=""))
    assert (error.code, error.status) == (21602, 400)


def test_missing_sender_is_21603(twilio):
    error = refused(lambda: twilio.messages.create(to=TO, body="hi"))
    assert (error.code, error.status) == (21603, 400)


def test_wrong_token_is_401_20003(sim, clients):
    twilio = clients(sim, twilio_auth_token="wrong")
    error = refused(lambda: twilio.messages.create(to=TO, from_="21333", body="hi"))
    assert (error.code, error.status) == (20003, 401)
    with pytest.raises(TwilioException, match="20003"):  # the client's list raises the base class
        twilio.messages.list(limit=1)


def test_wrong_account_is_401_20003(sim, clients):
    twilio = clients(sim, twilio_account_sid="AC" + "9" * 32)
    error = refused(lambda: twilio.messages.create(to=TO, from_="21333", body="hi"))
    assert (error.code, error.status) == (20003, 401)


def test_over_max_concurrency_is_429_20429(start_sim, clients):
    sim = start_sim(max_concurrency=2, latency_ms=2000)  # the first two stay in flight
    twilios = [clients(sim) for _ in range(6)]  # one client per thread: they keep the last response
    together = threading.Barrier(6)

    def send(i: int) -> object:
        together.wait(timeout=10)
        try:
            return twilios[i].messages.create(to=TO, from_="21333", body=f"burst {i}").sid
        except TwilioRestException as exc:
            return exc

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(send, range(6)))
    errors = [o for o in outcomes if isinstance(o, TwilioRestException)]
    assert len(errors) == 4 and len(outcomes) - len(errors) == 2
    assert {(e.code, e.status) for e in errors} == {(20429, 429)}
    stats = sim_json(sim, "GET", "/sim/stats")
    assert stats["rejected"] == {"20429": 4} and stats["peak_in_flight"] == 2


def test_error_rate_one_answers_500(start_sim, clients):
    twilio = clients(start_sim(error_rate=1.0))
    error = refused(lambda: twilio.messages.create(to=TO, from_="21333", body="hi"))
    assert error.status == 500 and error.code == 20500
    assert twilio.messages.list(limit=5) == []  # nothing was accepted


# --- opt-outs ---------------------------------------------------------------------------


def test_stop_by_text_opts_out_and_start_opts_back_in(start_sim, clients, receiver):
    sim = start_sim(webhook_url=receiver.url + "/sms/inbound", advanced_opt_out=True)
    twilio = clients(sim)
    twilio.messages.create(to=TO, from_="21333", body="before")

    answer = sim_json(sim, "POST", "/sim/inbound", json={"from": TO, "body": " stop "})
    assert answer["opt_out_type"] == "STOP"
    assert receiver.wait_for(1)[0].form["OptOutType"] == "STOP"
    error = refused(lambda: twilio.messages.create(to=TO, from_="21333", body="after"))
    assert (error.code, error.status) == (21610, 400)
    twilio.messages.create(to=OTHER, from_="21333", body="others still get texts")

    sim_json(sim, "POST", "/sim/inbound", json={"from": TO, "body": "START"})
    assert twilio.messages.create(to=TO, from_="21333", body="welcome back").status == "queued"


def test_a_short_codes_stop_is_posted_plain_for_the_service_to_answer(start_sim, clients,
                                                                      receiver):  # fmt: skip
    """Without a Messaging Service using Advanced Opt-Out nobody answers STOP but the
    service: the webhook gets a plain text, and its reply is what the phone sees."""
    sim = start_sim(webhook_url=receiver.url + "/sms/inbound")
    receiver.reply = (
        200,
        "text/xml",
        "<Response><Message>You are unsubscribed</Message></Response>",
    )
    answer = sim_json(sim, "POST", "/sim/inbound", json={"from": TO, "body": "STOP"})
    assert answer["opt_out_type"] is None and answer["replies"] == ["You are unsubscribed"]
    assert "OptOutType" not in receiver.wait_for(1)[0].form
    error = refused(lambda: clients(sim).messages.create(to=TO, from_="21333", body="after"))
    assert error.code == 21610  # Twilio's own list still blocks later sends


def test_advanced_opt_out_follows_the_messaging_service_setting():
    from tests.factories import make_settings

    plain = SimConfig.from_settings(make_settings("sqlite://"))
    service = SimConfig.from_settings(
        make_settings("sqlite://", twilio_messaging_service_sid="MG1")
    )
    assert (plain.advanced_opt_out, service.advanced_opt_out) == (False, True)


@pytest.mark.parametrize("word", ["STOPALL", "unsubscribe", "Cancel", "END", "quit."])
def test_every_twilio_opt_out_word_counts(start_sim, clients, receiver, word):
    sim = start_sim(webhook_url=receiver.url + "/sms/inbound")
    sim_json(sim, "POST", "/sim/inbound", json={"from": TO, "body": word})
    error = refused(lambda: clients(sim).messages.create(to=TO, from_="21333", body="x"))
    assert error.code == 21610


def test_opt_outs_can_be_set_and_cleared_directly(sim, twilio):
    sim_json(sim, "POST", "/sim/optouts", json={"number": "(202) 555-0123"})
    assert sim_json(sim, "GET", "/sim/optouts") == {"opt_outs": [TO]}
    assert refused(lambda: twilio.messages.create(to=TO, from_="21333", body="x")).code == 21610
    sim_json(sim, "DELETE", "/sim/optouts", params={"number": TO})
    assert twilio.messages.create(to=TO, from_="21333", body="x").status == "queued"


@pytest.mark.parametrize("path", ["/sim/optouts", "/sim/outcomes"])
def test_clearing_with_a_bad_number_is_refused_and_clears_nothing(sim, twilio, path):
    sim_json(sim, "POST", "/sim/optouts", json={"number": TO})
    sim_json(sim, "POST", "/sim/outcomes", json={"number": TO, "status": "failed"})
    with requests.delete(sim.url + path, params={"number": "garbage"}, timeout=10) as response:
        assert response.status_code == 400
    assert sim_json(sim, "GET", "/sim/optouts") == {"opt_outs": [TO]}
    sim_json(sim, "DELETE", "/sim/optouts")
    message = twilio.messages.create(to=TO, from_="21333", body="x")
    wait_for(lambda: twilio.messages(message.sid).fetch().status == "failed", timeout=10)


# --- list and fetch ----------------------------------------------------------------------


def test_list_filters_and_pages_newest_first(twilio):
    sent = [twilio.messages.create(to=TO, from_="21333", body=f"n{i}").sid for i in range(7)]
    twilio.messages.create(to=OTHER, from_="21333", body="someone else")

    since = datetime.now(UTC) - timedelta(minutes=5)
    found = twilio.messages.list(to=TO, date_sent_after=since, page_size=3)
    assert [m.sid for m in found] == sent[::-1]  # three pages followed by the client
    assert len(twilio.messages.list(limit=100)) == 8
    assert twilio.messages.list(from_="21333", to=OTHER)[0].body == "someone else"
    assert twilio.messages.list(to=TO, date_sent_before=since - timedelta(days=2)) == []
    assert len(twilio.messages.list(to=TO, date_sent=datetime.now(UTC))) == 7


def test_list_page_shape(sim, twilio):
    for i in range(3):
        twilio.messages.create(to=TO, from_="21333", body=f"n{i}")
    page = sim_json(
        sim,
        "GET",
        f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
        params={"To": TO, "PageSize": 2},
        auth=(ACCOUNT_SID, AUTH_TOKEN),
    )
    assert (page["page"], page["page_size"], page["start"], page["end"]) == (0, 2, 0, 1)
    assert page["previous_page_uri"] is None and "PageToken=PA" in page["next_page_uri"]
    assert page["first_page_uri"].startswith(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json")
    assert [m["body"] for m in page["messages"]] == ["n2", "n1"]


def test_fetch_shows_the_status_reached(start_sim, clients):
    twilio = clients(start_sim(latency_ms=1500))  # answered at 1.5 s, sent at 3 s, final 4.5
    message = twilio.messages.create(to=TO, from_="21333", body="hi")
    assert twilio.messages(message.sid).fetch().status == "queued"
    fetched = wait_for(
        lambda: (m := twilio.messages(message.sid).fetch()).status == "delivered" and m,
        timeout=15,
    )
    assert fetched.price == "-0.00790"
    assert fetched.body == "hi" and fetched.to == TO


def test_queued_message_has_no_date_sent_yet(start_sim, clients):
    twilio = clients(start_sim(latency_ms=1500))  # answered at 1.5 s, sent at 3 s
    message = twilio.messages.create(to=TO, from_="21333", body="hi")
    assert message.date_sent is None
    since = datetime.now(UTC) - timedelta(minutes=5)
    # Like Twilio: while queued, DateSent filters miss it; listing by To alone finds it.
    assert twilio.messages.list(to=TO, date_sent_after=since) == []
    assert [m.sid for m in twilio.messages.list(to=TO)] == [message.sid]
    sent = wait_for(lambda: twilio.messages.list(to=TO, date_sent_after=since), timeout=15)
    assert [m.sid for m in sent] == [message.sid] and sent[0].date_sent is not None


def test_fetch_unknown_sid_is_404_20404(twilio):
    error = refused(lambda: twilio.messages("SM" + "0" * 32).fetch())
    assert (error.code, error.status) == (20404, 404)


def test_region_and_edge_hosts_are_rewritten_too(sim, twilio):
    twilio.region, twilio.edge = "ie1", "dublin"
    assert twilio.messages.create(to=TO, from_="21333", body="hi").status == "queued"
    assert rewrite_url(
        "https://api.dublin.ie1.twilio.com/2010-04-01/Accounts/AC1/Messages.json?To=%2B1",
        "http://127.0.0.1:8765",
    ) == ("http://127.0.0.1:8765/2010-04-01/Accounts/AC1/Messages.json?To=%2B1")


@pytest.mark.parametrize(
    ("environ", "reads_per_call", "verify"),
    [
        ({"PATH": "/bin", "REQUESTS_CA_BUNDLE": "/etc/ca.pem"}, False, "/etc/ca.pem"),
        ({"PATH": "/bin"}, False, True),
        ({"REQUESTS_CA_BUNDLE": "/etc/ca.pem", "HTTPS_PROXY": "http://proxy:3128"}, True, True),
        ({"all_proxy": "socks5://proxy:1080"}, True, True),
    ],
)
def test_clients_read_the_environment_once_unless_a_proxy_is_set(environ, reads_per_call, verify):
    http_client = TwilioHttpClient()
    read_environment_once(http_client, environ)
    assert (http_client.session.trust_env, http_client.session.verify) == (reads_per_call, verify)


def test_every_client_the_service_makes_reads_the_environment_once(settings, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/bundle.pem")
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    for config in (settings, settings.model_copy(update={"twilio_api_base_url": None})):
        session = make_twilio_client(config).http_client.session
        assert (session.trust_env, session.verify) == (False, "/etc/ssl/bundle.pem")


# --- status callbacks ------------------------------------------------------------------


def test_status_callbacks_arrive_in_order_and_signed(start_sim, clients, receiver):
    twilio = clients(start_sim(latency_ms=30))
    url = receiver.url + "/sms/status?tenant=1"
    message = twilio.messages.create(to=TO, from_="21333", body="hi", status_callback=url)

    calls = receiver.wait_for(3)
    assert [c.form["MessageStatus"] for c in calls] == ["queued", "sent", "delivered"]
    for call in calls:
        assert signature_ok(url, call)
        assert call.path == "/sms/status?tenant=1"
        assert call.form["MessageSid"] == call.form["SmsSid"] == message.sid
        assert call.form["SmsStatus"] == call.form["MessageStatus"]
        assert (call.form["From"], call.form["To"]) == ("21333", TO)
        assert call.form["AccountSid"] == ACCOUNT_SID and call.form["ApiVersion"] == "2010-04-01"
        assert "ErrorCode" not in call.form
        assert not signature_ok(url, call, token="another-token")


def test_undelivered_callback_carries_the_error_code(start_sim, clients, receiver):
    twilio = clients(start_sim(undelivered_rate=1.0, callbacks="final"))
    url = receiver.url + "/sms/status"
    message = twilio.messages.create(to=TO, from_="21333", body="hi", status_callback=url)

    (call,) = receiver.wait_for(1)
    assert call.form["MessageStatus"] == "undelivered"
    assert call.form["ErrorCode"] in {"30003", "30005"} and signature_ok(url, call)
    fetched = twilio.messages(message.sid).fetch()
    assert fetched.status == "undelivered" and str(fetched.error_code) == call.form["ErrorCode"]
    assert receiver.received.empty()


def test_preset_outcome_for_a_number(sim, twilio, receiver):
    sim_json(
        sim, "POST", "/sim/outcomes", json={"number": TO, "status": "failed", "error_code": 30007}
    )
    url = receiver.url + "/sms/status"
    twilio.messages.create(to=TO, from_="21333", body="hi", status_callback=url)
    final = receiver.wait_for(3)[-1]
    assert (final.form["MessageStatus"], final.form["ErrorCode"]) == ("failed", "30007")


def test_callbacks_none_posts_nothing(start_sim, clients, receiver):
    sim = start_sim(callbacks="none")
    message = clients(sim).messages.create(
        to=TO, from_="21333", body="hi", status_callback=receiver.url + "/sms/status"
    )
    time.sleep(0.2)
    assert receiver.received.empty()
    assert clients(sim).messages(message.sid).fetch().status == "delivered"


def test_failed_callback_is_counted_not_fatal(sim, twilio, receiver):
    receiver.reply = (500, "text/plain", "boom")
    twilio.messages.create(
        to=TO, from_="21333", body="hi", status_callback=receiver.url + "/sms/status"
    )
    receiver.wait_for(3)
    callbacks = wait_for(  # counted once the simulator has read each 500
        lambda: (c := sim_json(sim, "GET", "/sim/stats")["callbacks"])["failed"] == 3 and c,
        timeout=10,
    )
    assert callbacks["sent"] == 0


# --- the phone -----------------------------------------------------------------------------


def test_inbound_is_signed_and_replies_are_parsed(start_sim, receiver):
    webhook = receiver.url + "/sms/inbound"
    sim = start_sim(webhook_url=webhook)
    receiver.reply = (
        200,
        "text/xml",
        "<?xml version='1.0' encoding='UTF-8'?><Response><Message>Thanks for joining!"
        "</Message><Message><Body>Reply HELP for help</Body></Message></Response>",
    )
    answer = sim_json(sim, "POST", "/sim/inbound", json={"from": TO, "body": "JOIN"})
    assert answer["webhook_status"] == 200
    assert answer["replies"] == ["Thanks for joining!", "Reply HELP for help"]
    assert answer["opt_out_type"] is None and SID.match(answer["message_sid"])

    (call,) = receiver.wait_for(1)
    assert call.path == "/sms/inbound" and signature_ok(webhook, call)
    form = call.form
    assert (form["From"], form["To"], form["Body"]) == (TO, "21333", "JOIN")
    assert form["MessageSid"] == form["SmsSid"] == form["SmsMessageSid"] == answer["message_sid"]
    assert (form["NumMedia"], form["NumSegments"], form["SmsStatus"]) == ("0", "1", "received")
    assert (form["AccountSid"], form["ApiVersion"]) == (ACCOUNT_SID, "2010-04-01")
    assert (form["FromCountry"], form["ToCountry"]) == ("US", "US")
    assert "OptOutType" not in form


def test_inbound_with_empty_twiml_and_explicit_fields(start_sim, receiver):
    sim = start_sim(webhook_url=receiver.url + "/sms/inbound")
    answer = sim_json(
        sim,
        "POST",
        "/sim/inbound",
        json={"from": TO, "body": "stop please", "to": "+12025550100", "opt_out_type": "stop"},
    )
    assert answer["replies"] == [] and answer["opt_out_type"] == "STOP"
    form = receiver.wait_for(1)[0].form
    assert form["To"] == "+12025550100" and form["OptOutType"] == "STOP"


def test_inbound_reports_the_webhook_refusal(start_sim, receiver):
    sim = start_sim(webhook_url=receiver.url + "/sms/inbound")
    receiver.reply = (403, "text/plain", "bad signature")
    answer = sim_json(sim, "POST", "/sim/inbound", json={"from": TO, "body": "JOIN"})
    assert answer["webhook_status"] == 403 and answer["replies"] == []


def test_conversation_log_and_sent_messages(start_sim, clients, receiver):
    sim = start_sim(webhook_url=receiver.url + "/sms/inbound")
    receiver.reply = (200, "text/xml", "<Response><Message>Welcome</Message></Response>")
    sim_json(sim, "POST", "/sim/inbound", json={"from": TO, "body": "JOIN"})
    twilio = clients(sim)
    twilio.messages.create(to=TO, from_="21333", body="Broadcast 1")
    twilio.messages.create(to=OTHER, from_="21333", body="Broadcast 1")

    log = sim_json(sim, "GET", "/sim/conversations/+12025550123")["conversation"]
    assert [(e["direction"], e["body"]) for e in log] == [
        ("inbound", "JOIN"),
        ("outbound-reply", "Welcome"),
        ("outbound-api", "Broadcast 1"),
    ]
    # What each phone was sent: API sends and the keyword reply, newest first.
    sent = sim_json(sim, "GET", "/sim/messages", params={"to": TO})["messages"]
    assert [(m["direction"], m["body"]) for m in sent] == [
        ("outbound-api", "Broadcast 1"), ("outbound-reply", "Welcome"),
    ]  # fmt: skip
    assert sent[1]["to"] == TO and sent[1]["from"] == "21333"
    assert len(sim_json(sim, "GET", "/sim/messages")["messages"]) == 3
    api = sim_json(sim, "GET", "/sim/messages", params={"direction": "outbound-api"})
    assert [m["to"] for m in api["messages"]] == [OTHER, TO]
    only = sim_json(sim, "GET", "/sim/messages", params={"to": OTHER})["messages"]
    assert [m["to"] for m in only] == [OTHER]

    stats = sim_json(sim, "GET", "/sim/stats")
    assert stats["accepted"] == 2 and stats["inbound"] == 1
    assert sum(s["accepted"] for s in stats["per_second"]) == 2
    uptime = sim_json(sim, "GET", "/sim/health")["uptime_s"]
    sim_json(sim, "DELETE", "/sim/messages")
    assert sim_json(sim, "GET", "/sim/messages")["messages"] == []
    assert sim_json(sim, "GET", "/sim/stats")["accepted"] == 0
    health = sim_json(sim, "GET", "/sim/health")
    assert health["status"] == "ok" and health["uptime_s"] >= uptime  # clearing is no restart


def test_memory_is_bounded(start_sim, clients):
    sim = start_sim(max_messages=5)
    twilio = clients(sim)
    sids = [twilio.messages.create(to=TO, from_="21333", body=f"n{i}").sid for i in range(8)]
    assert [m.sid for m in twilio.messages.list()] == sids[:2:-1]
    assert refused(lambda: twilio.messages(sids[0]).fetch()).code == 20404
    assert sim_json(sim, "GET", "/sim/stats")["evicted"] == 3


def test_busy_port_is_reported(sim):
    with pytest.raises(OSError):
        run_in_thread(SimConfig(port=sim.port, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN))


@pytest.mark.slow  # the simulator as a process
def test_command_line_serves_the_api(clients):
    port = free_port()
    command = [
        sys.executable, "-m", "sms_service.cli", "carrier-sim", "--port", str(port),
        "--account-sid", ACCOUNT_SID, "--auth-token", AUTH_TOKEN, "--callbacks", "none",
        "--latency-ms", "5", "--log-level", "WARNING",
    ]  # fmt: skip
    env = {**os.environ, "PUBLIC_BASE_URL": "https://sms.example.org/"}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    ) as process:
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_it_answers(url + "/sim/health", timeout=20, process=process)
            twilio = clients(url)
            assert twilio.messages.create(to=TO, from_="21333", body="hi").status == "queued"
        finally:
            process.terminate()
            out, _ = process.communicate(timeout=10)
    assert b"latency 5 ms" in out
    assert b"webhook https://sms.example.org/sms/inbound" in out  # what the service checks


def test_config_from_settings_posts_where_the_service_checks_signatures(settings):
    public = settings.model_copy(update={"public_base_url": "https://sms.example.org/"})
    assert SimConfig.from_settings(public).webhook_url == "https://sms.example.org/sms/inbound"
    local = settings.model_copy(update={"public_base_url": None})
    assert SimConfig.from_settings(local).webhook_url is None
    chosen = SimConfig.from_settings(public, webhook_url="http://127.0.0.1:9/sms/inbound")
    assert chosen.webhook_url == "http://127.0.0.1:9/sms/inbound"
    assert (chosen.account_sid, chosen.short_code) == (
        settings.twilio_account_sid, settings.twilio_from,
    )  # fmt: skip
