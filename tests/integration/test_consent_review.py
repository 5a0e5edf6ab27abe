"""Staff review of possible opt-outs, and a number's consent history, via the CLI."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlmodel import Session

from sms_service.cli.main import main
from sms_service.models import ConsentEvent, InboundMessage, Subscriber
from tests.factories import text_in

PHONE = "+12025550123"


@pytest.fixture
def runner(monkeypatch, database_url):
    monkeypatch.setenv("DATABASE_URL", database_url)
    return CliRunner()


def run(runner, *args):
    return runner.invoke(main, list(args), catch_exceptions=False)


def sid_of(app, body):
    with Session(app.extensions["sms_engine"]) as s:
        return s.execute(
            select(InboundMessage.message_sid).where(InboundMessage.body == body)
        ).scalar_one()


def status(app) -> str:
    with Session(app.extensions["sms_engine"]) as s:
        return s.execute(select(Subscriber.status)).scalar_one()


def test_review_confirming_an_opt_out(runner, app, client, settings):
    text_in(client, settings, PHONE, "JOIN")
    text_in(client, settings, PHONE, "I want to quit these")
    sid = sid_of(app, "I want to quit these")
    pending = run(runner, "consent", "pending")
    assert sid in pending.stdout and "1 awaiting review" in pending.stderr

    assert run(runner, "consent", "resolve", sid, "--opt-out", "--by", "Maya").exit_code == 0
    assert status(app) == "opted_out"
    assert run(runner, "consent", "pending").stdout == ""
    again = run(runner, "consent", "resolve", sid, "--keep", "--by", "Maya")
    assert again.exit_code != 0 and "no unresolved" in again.output

    with Session(app.extensions["sms_engine"]) as s:
        events = s.execute(select(ConsentEvent).order_by(ConsentEvent.id)).scalars().all()
    assert [(e.event, e.source) for e in events] == [
        ("opt_in", "sms"), ("possible_opt_out", "sms"),
        ("possible_opt_out_resolved", "admin"), ("opt_out", "admin"),
    ]  # fmt: skip
    assert "Maya" in events[2].note

    history = run(runner, "consent", "history", "(202) 555-0123").stdout
    assert history.index("opt_in") < history.index("possible_opt_out") < history.index("admin")
    assert "Msg & data rates may apply" in history


def test_review_keeping_the_subscriber(runner, app, client, settings):
    text_in(client, settings, PHONE, "JOIN")
    text_in(client, settings, PHONE, "stop the deportations!")
    sid = sid_of(app, "stop the deportations!")
    assert run(runner, "consent", "resolve", sid, "--keep", "--by", "Maya").exit_code == 0
    assert status(app) == "subscribed"
    assert run(runner, "consent", "pending").stdout == ""
