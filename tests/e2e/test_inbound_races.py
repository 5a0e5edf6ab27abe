"""Races on the inbound path, for real: gunicorn with several workers and threads on
PostgreSQL (and on the embedded SQLite default), requests fired at the same instant from
separate client threads.

Every inbound text must be stored exactly once and answered 200 whatever it races: a
second first-text from the same brand-new number, a Twilio retry of the same MessageSid,
a status callback about the same number. The final status follows commit order.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlmodel import Session
from twilio.request_validator import RequestValidator

from sms_service.db import make_engine
from sms_service.models import (
    Campaign,
    ConsentEvent,
    InboundMessage,
    MessageStatusEvent,
    Signature,
    Subscriber,
)
from tests.factories import answers, free_port, inbound_form, new_sid, truncate_all, wait_for

BIN = Path(sys.executable).parent
TOKEN = "race-auth-token-0123456789abcdef"
BASE_URL = "https://sms.race.example"
ROUNDS = 8


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
def database(request, tmp_path_factory) -> str:
    """The run's PostgreSQL database, or a migrated SQLite file. Each test uses numbers of
    its own SQLite file."""
    if request.param == "postgresql":
        return request.getfixturevalue("pg_url")
    path = tmp_path_factory.mktemp("race-sqlite") / "sms.db"
    shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="module")
def served(database, tmp_path_factory):
    """gunicorn (3 workers × 8 threads) serving the app on ``database``."""
    port = free_port()
    env = {
        **os.environ,
        "APP_ENV": "test",
        "DATABASE_URL": database,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "PUBLIC_BASE_URL": BASE_URL,
        "PORT": str(port),
    }
    gunicorn = shutil.which("gunicorn", path=str(BIN))
    cwd = tmp_path_factory.mktemp("race")
    proc = subprocess.Popen(
        [gunicorn, "sms_service.web.wsgi:app", "--bind", f"127.0.0.1:{port}",
         "--workers", "3", "--threads", "8", "--worker-class", "gthread"],
        env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: answers(base + "/healthz"), timeout=40, interval=0.1, what=base)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def db(database):
    if database.startswith("postgresql"):
        truncate_all(database)  # other modules' tests share this database
    engine = make_engine(database)
    yield engine
    engine.dispose()


def post(base: str, path: str, form: dict[str, str]) -> tuple[int, str]:
    """POST ``form`` to ``path`` signed the way Twilio signs it for PUBLIC_BASE_URL."""
    signature = RequestValidator(TOKEN).compute_signature(BASE_URL + path, form)
    request = urllib.request.Request(
        base + path, data=urllib.parse.urlencode(form).encode(), method="POST",
        headers={"X-Twilio-Signature": signature},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def at_once(base: str, *requests: tuple[str, dict[str, str]]) -> list[tuple[int, str]]:
    """Fire every (path, form) from its own thread, released together by a barrier."""
    barrier = threading.Barrier(len(requests))
    results: list[tuple[int, str] | None] = [None] * len(requests)

    def fire(i: int, path: str, form: dict[str, str]) -> None:
        barrier.wait()
        results[i] = post(base, path, form)

    threads = [threading.Thread(target=fire, args=(i, *r)) for i, r in enumerate(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(r is not None for r in results), "a request never came back"
    return results  # type: ignore[return-value]


def rows(engine, model, *where):
    with Session(engine) as s:
        return list(s.execute(select(model).where(*where).order_by(model.id)).scalars())


def new_number(i: int) -> str:
    return f"+1202555{i:04d}"


def test_stop_and_join_from_a_brand_new_number_are_both_stored(served, db):
    for i in range(ROUNDS):
        phone = new_number(100 + i)
        stop, join = inbound_form(phone, "STOP"), inbound_form(phone, "JOIN")
        results = at_once(served, ("/sms/inbound", stop), ("/sms/inbound", join))
        assert [status for status, _ in results] == [200, 200], (i, results)
        stored = {
            m.message_sid: m for m in rows(db, InboundMessage, InboundMessage.from_number == phone)
        }
        assert set(stored) == {stop["MessageSid"], join["MessageSid"]}
        [subscriber] = rows(db, Subscriber, Subscriber.phone == phone)
        events = rows(db, ConsentEvent, ConsentEvent.phone == phone)
        # One consent event per text, and the status is what the last committed one says.
        assert sorted(e.message_sid for e in events) == sorted(stored)
        assert (
            subscriber.status == {"opt_out": "opted_out", "opt_in": "subscribed"}[events[-1].event]
        )


def test_sign_twice_at_once_signs_once_and_stores_both_texts(served, db):
    with Session(db) as s:
        s.add(Campaign(keyword="HK64", title="Release the 64", petition_text="Dear Secretary"))
        s.commit()
    for i in range(ROUNDS):
        phone = new_number(200 + i)
        first, second = inbound_form(phone, "SIGN"), inbound_form(phone, "SIGN")
        results = at_once(served, ("/sms/inbound", first), ("/sms/inbound", second))
        assert [status for status, _ in results] == [200, 200], (i, results)
        assert len(rows(db, InboundMessage, InboundMessage.from_number == phone)) == 2
        [subscriber] = rows(db, Subscriber, Subscriber.phone == phone)
        assert subscriber.status == "subscribed"
        assert len(rows(db, Signature, Signature.subscriber_id == subscriber.id)) == 1


def test_a_twilio_retry_racing_the_first_delivery_is_handled_once(served, db):
    for i in range(ROUNDS):
        form = inbound_form(new_number(300 + i), "JOIN")
        results = at_once(served, ("/sms/inbound", form), ("/sms/inbound", dict(form)))
        assert [status for status, _ in results] == [200, 200], (i, results)
        assert results[0][1] == results[1][1] and "Msg &amp; data rates" in results[0][1]
        where = ConsentEvent.message_sid == form["MessageSid"]
        assert len(rows(db, InboundMessage, InboundMessage.message_sid == form["MessageSid"])) == 1
        assert len(rows(db, ConsentEvent, where)) == 1


def test_stop_racing_an_unknown_handset_callback_still_opts_out(served, db):
    for i in range(ROUNDS):
        phone = new_number(400 + i)
        stop = inbound_form(phone, "STOP")
        sid = new_sid()
        callback = {
            "SmsSid": sid, "SmsStatus": "undelivered", "MessageStatus": "undelivered",
            "To": phone, "MessageSid": sid, "AccountSid": "AC" + "1" * 32, "From": "21333",
            "ApiVersion": "2010-04-01", "ErrorCode": "30005",
        }  # fmt: skip
        results = at_once(served, ("/sms/inbound", stop), ("/sms/status", callback))
        assert [status for status, _ in results] == [200, 204], (i, results)
        assert len(rows(db, InboundMessage, InboundMessage.message_sid == stop["MessageSid"])) == 1
        assert len(rows(db, MessageStatusEvent, MessageStatusEvent.sid == sid)) == 1
        [subscriber] = rows(db, Subscriber, Subscriber.phone == phone)
        # Whichever committed first, the opt-out is the stronger fact and stays.
        assert subscriber.status == "opted_out"
        assert [e.event for e in rows(db, ConsentEvent, ConsentEvent.phone == phone)] == ["opt_out"]


def test_a_burst_is_stored_once_each_in_shared_transactions_on_postgresql(served, db):
    """48 texts from different numbers at once: every one answered and stored exactly once
    with its own reply; on PostgreSQL the workers' group commit stored them in fewer
    transactions than texts (rows a transaction inserts share its xmin), on SQLite one each."""
    forms = [inbound_form(new_number(500 + i), "JOIN" if i % 3 else "HELP") for i in range(48)]
    results = at_once(served, *[("/sms/inbound", form) for form in forms])
    assert all(status == 200 for status, _ in results), results
    for form, (_, body) in zip(forms, results, strict=True):
        assert ("Help at" in body) == (form["Body"] == "HELP"), body  # its own reply
    sids = [form["MessageSid"] for form in forms]
    with db.connect() as conn:
        texts = conn.execute(
            select(InboundMessage.message_sid).where(InboundMessage.message_sid.in_(sids))
        ).scalars().all()  # fmt: skip
        assert sorted(texts) == sorted(sids)
        if db.dialect.name == "postgresql":
            transactions = conn.exec_driver_sql(
                "SELECT count(DISTINCT xmin::text) FROM inbound_messages "
                "WHERE message_sid = ANY(%(sids)s)",
                {"sids": sids},
            ).scalar()  # fmt: skip
            assert transactions < len(sids)
