"""The inbound hot path stays cheap and still correct: few statements per text, a campaign
catalogue cached per process that follows every change made elsewhere, and a database
connection dropped under the app (no pre-ping) costing a retry, never a lost text."""

from __future__ import annotations

import tempfile

import pytest
from psycopg import pq
from sqlalchemy import event, text, update
from sqlmodel import Session, select

from sms_service.db import make_engine, session_scope
from sms_service.models import Campaign, InboundMessage, Subscriber
from sms_service.services.campaigns import create_campaign
from tests.factories import text_in

A, B, C = "+12025550123", "+14155550100", "+13125550142"


def statements(engine, action) -> list[str]:
    """The SQL statements the engine sends while ``action`` runs (first word of each)."""
    seen: list[str] = []

    def record(conn, cursor, statement, *args) -> None:
        seen.append(statement.split(None, 1)[0].upper())

    event.listen(engine, "before_cursor_execute", record)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


def round_trips(engine, action) -> int:
    """How many times the client waited for PostgreSQL while ``action`` ran: libpq's own
    protocol trace of every connection checked out, counting the messages that end a
    request (Sync, or a simple Query)."""
    traced = []

    def checkout(dbapi_connection, record, proxy) -> None:
        dbapi_connection.pgconn.trace(trace.fileno())
        dbapi_connection.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        traced.append(dbapi_connection)

    with tempfile.TemporaryFile() as trace:
        event.listen(engine, "checkout", checkout)
        try:
            action()
        finally:
            event.remove(engine, "checkout", checkout)
            for connection in traced:
                connection.pgconn.untrace()
        trace.seek(0)
        lines = trace.read().decode().splitlines()
    return sum(
        1 for line in lines if line.startswith("F\t") and line.split("\t")[2] in ("Sync", "Query")
    )


@pytest.fixture
def engine(app):
    return app.extensions["sms_engine"]


def add_campaign(engine, keyword: str, title: str) -> None:
    with session_scope(engine) as session:
        create_campaign(session=session, keyword=keyword, title=title)


def test_a_join_from_a_new_number_is_two_round_trips(engine, client, settings):
    add_campaign(engine, "HK64", "Release the 64")
    text_in(client, settings, C, "HELP")  # warms the catalogue cache and the pool
    sent = statements(engine, lambda: text_in(client, settings, A, "JOIN"))
    # The locked row (with the catalogue's fingerprint on PostgreSQL), the conversation and
    # any web confirmation; SQLite (in-process, nothing to save) reads the catalogue too.
    # PostgreSQL's group commit first looks for the text's MessageSid (a Twilio retry) and
    # sets the group's lock timeout (set_config).
    reads = ["SELECT"] * (5 if engine.dialect.name == "postgresql" else 4)
    assert sent == [*reads, "INSERT", "INSERT", "INSERT"]  # message, subscriber, event
    with Session(engine) as s:
        [row] = s.exec(text("SELECT status FROM subscribers WHERE phone = :p").bindparams(p=A))
        assert row.status == "subscribed"
    if engine.dialect.name == "postgresql":
        # BEGIN with the reads; the writes with COMMIT.
        assert round_trips(engine, lambda: text_in(client, settings, B, "JOIN")) == 2


def test_a_stop_from_a_subscriber_is_two_round_trips(engine, client, settings):
    text_in(client, settings, A, "JOIN")
    sent = statements(engine, lambda: text_in(client, settings, A, "STOP"))
    # + the MessageSid and the group's lock timeout on PostgreSQL, the catalogue on SQLite
    reads = 5 if engine.dialect.name == "postgresql" else 4
    assert sent == ["SELECT"] * reads + ["INSERT", "UPDATE", "INSERT"]  # message, status, event
    if engine.dialect.name == "postgresql":
        text_in(client, settings, B, "JOIN")
        assert round_trips(engine, lambda: text_in(client, settings, B, "STOP")) == 2


def test_a_twilio_retry_rolls_back_and_answers_the_stored_reply(engine, client, settings):
    first = text_in(client, settings, A, "JOIN", sid="SM" + "7" * 32).get_data(as_text=True)
    again = text_in(client, settings, A, "STOP", sid="SM" + "7" * 32).get_data(as_text=True)
    assert again == first and "unsubscribed" not in again
    with Session(engine) as s:
        assert s.exec(select(Subscriber)).one().status == "subscribed"
        assert len(s.exec(select(InboundMessage)).all()) == 1


def test_the_cached_catalogue_follows_campaigns_created_and_closed_elsewhere(
    engine, client, settings
):
    reply = text_in(client, settings, A, "SIGN").get_data(as_text=True)
    assert "Release" not in reply  # no petition yet
    other = make_engine(settings.database_url)  # another process's view: the CLI, a worker
    try:
        add_campaign(other, "HK64", "Release the 64")
        assert "Release the 64" in text_in(client, settings, B, "SIGN").get_data(as_text=True)
        with session_scope(other) as session:
            session.execute(update(Campaign).values(title="Free the 64"))
        assert "Free the 64" in text_in(client, settings, C, "HK64").get_data(as_text=True)
        with session_scope(other) as session:
            session.execute(update(Campaign).values(active=False))
        closed = text_in(client, settings, "+16175550199", "SIGN").get_data(as_text=True)
        assert "64" not in closed
    finally:
        other.dispose()


def test_a_text_after_the_database_dropped_the_connection_is_stored(pg_db):
    from sms_service import create_app
    from tests.factories import make_settings

    settings = make_settings(pg_db)
    app = create_app(settings)
    engine = app.extensions["sms_engine"]
    client = app.test_client()
    try:
        assert text_in(client, settings, A, "JOIN").status_code == 200  # pools a connection
        admin = make_engine(pg_db)
        with admin.begin() as conn:
            killed = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
        admin.dispose()
        assert killed >= 1
        response = text_in(client, settings, A, "STOP")
        assert response.status_code == 200 and "unsubscribed" in response.get_data(as_text=True)
        with Session(engine) as s:
            assert len(s.exec(select(InboundMessage)).all()) == 2
            assert s.exec(select(Subscriber)).one().status == "opted_out"
    finally:
        engine.dispose()
